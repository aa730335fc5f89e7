"""One real local stack (``soorma local up`` in a temporary ``SOORMA_HOME`` on free ports) shared by the security
tests of the local stack, with one plain function deployed through the deploy path (``PUT /_local/functions``):
``sec-echo`` answers with its event, the client context it was given and the names of its environment.

The helpers sign like any client of the stack would: boto3 with the access key of ``secrets.json``."""

from __future__ import annotations

import importlib.util
import json
import textwrap
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.config import Config

ROOT = Path(__file__).resolve().parents[2]
ECHO = "sec-echo"
ECHO_SOURCE = """
    import os

    def handler(event, context):
        custom = context.client_context.custom if context.client_context else None
        return {"event": event, "client_context": custom, "env": sorted(os.environ)}
"""


def _e2e_helpers():
    """``tests/e2e/conftest.py`` as a module (its ``local_stack`` starts and stops a stack)."""
    spec = importlib.util.spec_from_file_location("soorma_e2e_helpers", ROOT / "tests" / "e2e" / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def lambda_client(stack: dict[str, Any], **overrides: str):
    """boto3's Lambda client on the stack, signing with the stack's access key (or ``overrides``)."""
    secrets = stack["secrets"]
    return boto3.client(
        "lambda", endpoint_url=stack["credentials"]["api_url"], region_name="us-east-1",
        aws_access_key_id=overrides.get("key_id", secrets["aws_access_key_id"]),
        aws_secret_access_key=overrides.get("secret", secrets["aws_secret_access_key"]),
        config=Config(retries={"max_attempts": 1}, read_timeout=60, connect_timeout=10))


def put_function(stack: dict[str, Any], name: str, agent_name: str, code_dir: Path,
                 handler: str = "echo.handler") -> httpx.Response:
    """The deploy path's ``PUT /_local/functions/{name}`` (what ``soorma local deploy`` sends)."""
    return httpx.put(f"{stack['credentials']['api_url']}/_local/functions/{name}",
                     headers={"x-soorma-control-token": stack["secrets"]["control_token"]},
                     json={"handler": handler, "code_dir": str(code_dir), "platform_tenant_id": "local",
                           "agent_name": agent_name}, timeout=30)


def function_config(stack: dict[str, Any], name: str) -> dict[str, Any]:
    return json.loads((stack["home"] / "functions" / f"{name}.json").read_text())


def known_secrets(stack: dict[str, Any]) -> dict[str, str]:
    """Every secret value of the stack: ``secrets.json``, the API keys of ``credentials.json``, the echo function's
    agent key, and the passwords inside the NATS URL."""
    from urllib.parse import urlsplit

    # (the access key id is the public half of the Lambda API's credentials: `up` prints it)
    values = {f"secrets.{k}": v for k, v in stack["secrets"].items()
              if k not in ("nats_url", "aws_access_key_id") and isinstance(v, str)}
    for name in ("api_key", "admin_api_key"):
        values[f"credentials.{name}"] = stack["credentials"][name]
    values["echo agent key"] = function_config(stack, ECHO)["env"]["SOORMA_API_KEY"]
    password = urlsplit(stack["secrets"]["nats_url"]).password
    if password:
        values["nats password"] = password
    return values


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    helpers = _e2e_helpers()
    code = tmp_path_factory.mktemp("sec-code")
    (code / "echo.py").write_text(textwrap.dedent(ECHO_SOURCE))
    with helpers.local_stack("soorma-security-") as running:
        running["secrets"] = json.loads((running["home"] / "secrets.json").read_text())
        running["code_dir"] = code
        deployed = put_function(running, ECHO, "sec-echo-agent", code)
        assert deployed.status_code == 200, deployed.text
        yield running
