"""The local Lambda runtime: Lambda's Runtime API served on this machine and one real ``awslambdaric`` subprocess
per execution environment (no Docker).

>>> runtime = LocalLambda(logs_dir=".soorma/logs")
>>> runtime.register(FunctionConfig("planner", "agents.planner", code_dir="examples/research-advisor", env={}))
>>> result = await runtime.invoke("planner", b'{"Records": []}')

``create_lambda_api(runtime)`` serves Lambda's Invoke API over it for boto3 clients (imported lazily: it needs
Starlette).
"""

from soorma.local.runtime.manager import LocalLambda
from soorma.local.runtime.types import FunctionConfig, FunctionNotFound, InvokeResult

__all__ = ["FunctionConfig", "FunctionNotFound", "InvokeResult", "LocalLambda", "create_lambda_api"]


def __getattr__(name: str):
    if name == "create_lambda_api":
        from soorma.local.runtime.lambda_api import create_lambda_api

        return create_lambda_api
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
