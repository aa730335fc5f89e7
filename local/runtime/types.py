"""Public value types of the local Lambda runtime: function configuration, invocation result, errors."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

# Lambda's function-name rule (the bare name form; ARNs are resolved by the Invoke API front).
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

#: Lambda's limit on a synchronous request or response payload (bytes).
MAX_SYNC_PAYLOAD = 6 * 1024 * 1024
#: What the Runtime API accepts for a response before failing it with ``Function.ResponseSizeTooLarge``.
MAX_RESPONSE_PAYLOAD = 6_291_556
#: Last bytes of an invocation's log returned as ``log_tail`` (``X-Amz-Log-Result`` carries 4 KB).
LOG_TAIL_BYTES = 4096


class FunctionNotFound(LookupError):
    """No function of that name is registered (Lambda's ``ResourceNotFoundException``)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"Function not found: {name}")
        self.name = name


@dataclass(frozen=True)
class FunctionConfig:
    """One Lambda function as the local runtime runs it.

    ``handler`` is Lambda's ``module.attr`` string, imported by awslambdaric against ``code_dir`` (which becomes
    ``LAMBDA_TASK_ROOT``, the working directory and the head of ``PYTHONPATH``). With ``code_dir=None`` the handler
    must be importable from the interpreter's own environment (platform functions such as
    ``soorma.functions.gateway.handler.handler``).

    ``init_timeout_s`` bounds the INIT phase (Lambda: 10 s); ``timeout_s`` bounds each invocation once the
    environment has taken it.
    """

    name: str
    handler: str
    code_dir: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    timeout_s: float = 30.0
    memory_mb: int = 512
    max_concurrency: int = 4
    idle_timeout_s: float = 300.0
    init_timeout_s: float = 10.0
    #: The platform tenant an agent function was deployed for (``None``: a platform function). The bridge's local
    #: route source routes a tenant's deployment binding only to a function of that same tenant.
    platform_tenant_id: str | None = None

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"invalid function name {self.name!r}: use 1-64 of [A-Za-z0-9_-]")
        if "." not in self.handler.strip("."):
            raise ValueError(f"invalid handler {self.handler!r}: expected 'module.attr'")
        if self.timeout_s <= 0 or self.init_timeout_s <= 0 or self.idle_timeout_s <= 0:
            raise ValueError("timeout_s, init_timeout_s and idle_timeout_s must be positive")
        if self.max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        if self.memory_mb < 1:
            raise ValueError("memory_mb must be positive")
        bad = [k for k, v in self.env.items() if not isinstance(k, str) or not isinstance(v, str)]
        if bad:
            raise ValueError(f"env keys and values must be strings: {bad}")


@dataclass(frozen=True)
class InvokeResult:
    """What one invocation returned, as Lambda's Invoke API reports it.

    ``function_error`` is ``"Unhandled"`` (Lambda's ``X-Amz-Function-Error``) when ``payload`` is an error object
    (handler exception, init failure, timeout, runtime exit); ``None`` on success. ``init_duration_ms`` is set on
    the invocation that started its environment (a cold start). ``log_tail`` is the last 4 KB of the invocation's
    log: START, what the function wrote, END and REPORT.
    """

    payload: bytes
    function_error: str | None
    request_id: str
    duration_ms: float
    init_duration_ms: float | None
    log_tail: str

    @property
    def error_type(self) -> str | None:
        """``errorType`` of an error payload (``"Sandbox.Timedout"``, ``"Runtime.ExitError"``, ...)."""
        if self.function_error is None:
            return None
        try:
            return json.loads(self.payload).get("errorType")
        except (ValueError, AttributeError):
            return None

    def json(self):
        """The payload decoded as JSON."""
        return json.loads(self.payload)


def error_payload(error_type: str, message: str) -> bytes:
    """An error object in the shape Lambda's platform returns for failures it produces itself."""
    return json.dumps({"errorMessage": message, "errorType": error_type}).encode()
