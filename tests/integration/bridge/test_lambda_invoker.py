"""The AWS bridge's LambdaInvoker (boto3 ``Invoke``) against a stand-in for Lambda's Invoke API on 127.0.0.1 (no AWS):
a throttle maps to FunctionThrottled, a function error to a failed invocation, and calls run on the invoker's own
thread pool, so more of them than asyncio's default pool holds run in parallel and a busy default pool stalls none.

The stand-in speaks the REST shape of https://docs.aws.amazon.com/lambda/latest/api/API_Invoke.html:
``POST /2015-03-31/functions/{name}/invocations``; 429 with ``x-amzn-ErrorType: TooManyRequestsException`` (and
``Retry-After``); 200 with ``X-Amz-Function-Error: Unhandled`` for a function error.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import pytest
from botocore.config import Config

from soorma.functions.bridge import FunctionThrottled, InvokeResult, interpret
from soorma.infra.runtime.bridge_main import LambdaInvoker

pytestmark = pytest.mark.timeout(60)

SLOW_S = 1.0


class FakeLambda(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    active = 0
    peak = 0
    lock = threading.Lock()

    def log_message(self, *args) -> None:  # quiet
        pass

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in {"Content-Type": "application/json", "Content-Length": str(len(body)),
                           "x-amzn-RequestId": "req-1", **(headers or {})}.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:  # noqa: N802
        payload = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        name = self.path.split("/functions/", 1)[1].split("/", 1)[0]
        if name == "throttled":
            self._send(429, json.dumps({"Type": "User", "message": "Rate Exceeded.",
                                        "Reason": "ReservedFunctionConcurrentInvocationLimitExceeded"}).encode(),
                       {"x-amzn-ErrorType": "TooManyRequestsException", "Retry-After": "3"})
        elif name == "fails":
            self._send(200, json.dumps({"errorMessage": "boom", "errorType": "RuntimeError"}).encode(),
                       {"X-Amz-Function-Error": "Unhandled", "X-Amz-Executed-Version": "$LATEST"})
        elif name == "missing":
            self._send(404, json.dumps({"Type": "User", "message": "Function not found"}).encode(),
                       {"x-amzn-ErrorType": "ResourceNotFoundException"})
        else:  # "slow" / "echo": sleep, then a partial batch response naming nothing
            cls = type(self)
            with cls.lock:
                cls.active += 1
                cls.peak = max(cls.peak, cls.active)
            try:
                if name == "slow":
                    time.sleep(SLOW_S)
                records = json.loads(payload or b"{}").get("Records", [])
                self._send(200, json.dumps({"batchItemFailures": [], "seen": len(records)}).encode(),
                           {"X-Amz-Executed-Version": "$LATEST"})
            finally:
                with cls.lock:
                    cls.active -= 1


@pytest.fixture(scope="module")
def endpoint():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeLambda)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def client(endpoint: str, pool: int = 64):
    return boto3.client("lambda", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="test",
                        aws_secret_access_key="test",
                        config=Config(retries={"max_attempts": 0}, read_timeout=30, max_pool_connections=pool))


PAYLOAD = json.dumps({"Records": [{"messageId": "1", "body": "{}"}]}).encode()


async def test_success_throttle_and_function_error(endpoint):
    invoker = LambdaInvoker(client(endpoint), max_workers=4)
    try:
        ok = await invoker.invoke("echo", PAYLOAD)
        assert isinstance(ok, InvokeResult) and ok.function_error is None
        assert json.loads(ok.payload)["seen"] == 1 and interpret(ok, ["1"]).failed == frozenset()

        with pytest.raises(FunctionThrottled) as throttled:
            await invoker.invoke("throttled", PAYLOAD)
        assert "Rate Exceeded" in str(throttled.value) and throttled.value.retry_after_s == 3.0

        failed = await invoker.invoke("fails", PAYLOAD)
        assert failed.function_error == "Unhandled"
        outcome = interpret(failed, ["1"])
        assert outcome.all_failed and "RuntimeError: boom" in outcome.error

        with pytest.raises(Exception) as missing:  # any other error fails the invocation (the bridge retries)
            await invoker.invoke("missing", PAYLOAD)
        assert not isinstance(missing.value, FunctionThrottled)
        assert "ResourceNotFoundException" in type(missing.value).__name__ + str(missing.value)
    finally:
        invoker.close()


async def test_calls_beyond_the_default_pool_run_in_parallel(endpoint):
    default_pool = min(32, (os.cpu_count() or 1) + 4)
    calls = default_pool * 3
    invoker = LambdaInvoker(client(endpoint, pool=calls), max_workers=2)
    invoker.ensure_capacity(calls)  # what run() does with the routes' summed concurrency
    assert invoker.max_workers == calls
    FakeLambda.peak = 0
    try:
        started = time.monotonic()
        results = await asyncio.gather(*(invoker.invoke("slow", PAYLOAD) for _ in range(calls)))
        elapsed = time.monotonic() - started
        assert all(r.function_error is None for r in results)
        # serialised on the default pool this would take (calls / default_pool) * SLOW_S = 3 * SLOW_S at least
        assert elapsed < 3 * SLOW_S, elapsed
        assert FakeLambda.peak > default_pool, FakeLambda.peak
    finally:
        invoker.close()


async def test_a_busy_default_pool_does_not_stall_invocations(endpoint):
    """Long work on asyncio's shared pool (what asyncio.to_thread uses) leaves the invoker's calls unaffected."""
    invoker = LambdaInvoker(client(endpoint), max_workers=8)
    release = threading.Event()
    default_pool = min(32, (os.cpu_count() or 1) + 4)
    hogs = [asyncio.create_task(asyncio.to_thread(release.wait, 20)) for _ in range(default_pool + 2)]
    try:
        await asyncio.sleep(0.1)
        started = time.monotonic()
        result = await asyncio.wait_for(invoker.invoke("echo", PAYLOAD), 5)
        assert result.function_error is None and time.monotonic() - started < 2
    finally:
        release.set()
        await asyncio.gather(*hogs)
        invoker.close()


def test_size_for_routes_and_bad_sizes():
    from soorma.functions.bridge import Route

    invoker = LambdaInvoker(client("http://127.0.0.1:9"), max_workers=4)
    routes = [Route(consumer_name=f"t__a{i}", function_name=f"fn{i}", filter_subjects=("soorma.t.>",),
                    platform_tenant_id="t", agent=f"a{i}", max_concurrency=5) for i in range(3)]
    invoker.size_for(routes)
    assert invoker.max_workers == 15
    invoker.size_for(routes[:1])  # never shrinks while calls may be running
    assert invoker.max_workers == 15
    invoker.close()
    with pytest.raises(ValueError):
        LambdaInvoker(max_workers=0)
