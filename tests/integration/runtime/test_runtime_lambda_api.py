"""boto3 ``lambda.invoke`` against the Invoke API (lambda_api) served by uvicorn over a LocalLambda."""

from __future__ import annotations

import asyncio
import base64
import json
import socket

import boto3
import pytest
import uvicorn
from botocore.config import Config

from soorma.local.runtime import FunctionConfig, create_lambda_api
from soorma.local.sigv4 import LocalAwsCredentials

CREDENTIALS = LocalAwsCredentials("LOCALTESTKEY00000000", "test-secret-access-key")

HANDLERS = """
    import os

    calls = []

    def handler(event, context):
        calls.append(event)
        print("got", event)
        return {"echo": event, "calls": len(calls),
                "client_context": context.client_context.custom if context.client_context else None}

    def fail(event, context):
        raise KeyError("missing")
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
async def endpoint(runtime):
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_lambda_api(runtime, credentials=CREDENTIALS), host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="off"))
    task = asyncio.ensure_future(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await task


def _client(endpoint: str):
    return boto3.client("lambda", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id=CREDENTIALS.access_key_id,
                        aws_secret_access_key=CREDENTIALS.secret_access_key, config=Config(retries={"max_attempts": 1}))


@pytest.mark.timeout(60)
async def test_boto3_invoke(runtime, endpoint, write_module, code_dir):
    write_module("fn", HANDLERS)
    runtime.register(FunctionConfig("echo", "fn.handler", str(code_dir), {}))
    runtime.register(FunctionConfig("failing", "fn.fail", str(code_dir), {}))
    client = _client(endpoint)

    def call(**kwargs):
        return asyncio.to_thread(client.invoke, **kwargs)

    out = await call(FunctionName="echo", Payload=json.dumps({"a": 1}).encode(), LogType="Tail",
                     ClientContext=base64.b64encode(json.dumps({"custom": {"k": "v"}}).encode()).decode())
    assert out["StatusCode"] == 200 and "FunctionError" not in out
    assert out["ExecutedVersion"] == "$LATEST"
    body = json.loads(out["Payload"].read())
    assert body == {"echo": {"a": 1}, "calls": 1, "client_context": {"k": "v"}}
    log = base64.b64decode(out["LogResult"]).decode()
    assert "got {'a': 1}" in log and "REPORT RequestId: " in log

    # by ARN, no payload (Lambda passes {})
    out = await call(FunctionName=runtime.function_arn("echo"))
    assert json.loads(out["Payload"].read())["echo"] == {}

    out = await call(FunctionName="failing", Payload=b"{}")
    assert out["StatusCode"] == 200 and out["FunctionError"] == "Unhandled"
    error = json.loads(out["Payload"].read())
    assert error["errorType"] == "KeyError"

    with pytest.raises(client.exceptions.ResourceNotFoundException) as info:
        await call(FunctionName="nope", Payload=b"{}")
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert "Function not found" in info.value.response["Error"]["Message"]

    with pytest.raises(client.exceptions.InvalidRequestContentException):
        await call(FunctionName="echo", Payload=b"not json")

    # asynchronous invocation: 202 at once, the event runs in the background
    out = await call(FunctionName="echo", InvocationType="Event", Payload=b'{"async": true}')
    assert out["StatusCode"] == 202
    out = await call(FunctionName="echo", InvocationType="DryRun")
    assert out["StatusCode"] == 204
    for _ in range(100):
        if runtime.stats()["echo"]["invocations"] >= 3:
            break
        await asyncio.sleep(0.05)
    assert runtime.stats()["echo"]["invocations"] == 3

    listed = await asyncio.to_thread(client.list_functions)
    assert sorted(f["FunctionName"] for f in listed["Functions"]) == ["echo", "failing"]
    conf = await asyncio.to_thread(client.get_function_configuration, FunctionName="echo")
    assert conf["Handler"] == "fn.handler" and conf["Timeout"] == 30
