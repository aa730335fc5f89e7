"""Invocations through real awslambdaric environments: results, warm reuse, errors, timeouts, crashes, INIT."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time

import pytest

from soorma.local.runtime import FunctionConfig, FunctionNotFound, LocalLambda

COUNTER = """
    import os, time
    count = 0

    def handler(event, context):
        global count
        count += 1
        print(f"call {count}")
        return {
            "count": count,
            "event": event,
            "pid": os.getpid(),
            "request_id": context.aws_request_id,
            "function_name": context.function_name,
            "memory": context.memory_limit_in_mb,
            "remaining_ms": context.get_remaining_time_in_millis(),
            "env": {k: os.environ.get(k) for k in (
                "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_VERSION",
                "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME", "AWS_REGION", "AWS_DEFAULT_REGION",
                "TZ", "_HANDLER", "LAMBDA_TASK_ROOT", "AWS_LAMBDA_RUNTIME_API", "MY_SETTING", "_X_AMZN_TRACE_ID")},
            "cwd": os.getcwd(),
        }

    def slow(event, context):
        time.sleep(event.get("sleep", 1.0))
        return {"pid": os.getpid(), "slept": event.get("sleep", 1.0)}

    def fail(event, context):
        raise ValueError("bad input: " + str(event.get("x")))

    def crash(event, context):
        print("about to exit", flush=True)
        os._exit(3)
"""


@pytest.mark.timeout(60)
async def test_invoke_and_warm_reuse(runtime, write_module, code_dir):
    write_module("fn", COUNTER)
    runtime.register(FunctionConfig("counter", "fn.handler", str(code_dir), {"MY_SETTING": "on"},
                                    timeout_s=7, memory_mb=256))
    first = await runtime.invoke("counter", b'{"hello": "world"}')
    assert first.function_error is None
    body = first.json()
    assert body["count"] == 1
    assert body["event"] == {"hello": "world"}
    assert body["request_id"] == first.request_id
    assert body["function_name"] == "counter" and body["memory"] == "256"
    assert 5000 < body["remaining_ms"] <= 7000
    env = body["env"]
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == "counter"
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"
    assert env["AWS_LAMBDA_FUNCTION_VERSION"] == "$LATEST"
    assert env["AWS_LAMBDA_LOG_GROUP_NAME"] == "/aws/lambda/counter"
    assert "[$LATEST]" in env["AWS_LAMBDA_LOG_STREAM_NAME"]
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "us-east-1"
    assert env["TZ"] == ":UTC" and env["_HANDLER"] == "fn.handler"
    assert env["LAMBDA_TASK_ROOT"] == str(code_dir.resolve()) == body["cwd"]
    assert env["AWS_LAMBDA_RUNTIME_API"].startswith("127.0.0.1:")
    assert env["MY_SETTING"] == "on"
    assert env["_X_AMZN_TRACE_ID"].startswith("Root=1-")
    assert first.init_duration_ms is not None and first.init_duration_ms > 0
    assert "call 1" in first.log_tail

    second = await runtime.invoke("counter", b"{}")
    third = await runtime.invoke("counter", b"{}")
    assert [second.json()["count"], third.json()["count"]] == [2, 3]  # module state survives: same environment
    assert second.json()["pid"] == third.json()["pid"] == body["pid"]
    assert second.init_duration_ms is None and third.init_duration_ms is None
    assert "call 3" in third.log_tail and "call 2" not in third.log_tail
    stats = runtime.stats()["counter"]
    assert stats["environments"] == 1 and stats["idle"] == 1 and stats["busy"] == 0
    assert stats["invocations"] == 3 and stats["errors"] == 0 and stats["cold_starts"] == 1
    assert [c.name for c in runtime.functions()] == ["counter"]


@pytest.mark.timeout(30)
async def test_unknown_function(runtime):
    with pytest.raises(FunctionNotFound):
        await runtime.invoke("missing", b"{}")
    with pytest.raises(FunctionNotFound):
        runtime.unregister("missing")


@pytest.mark.timeout(60)
async def test_handler_exception_keeps_environment(runtime, write_module, code_dir):
    write_module("fn", COUNTER)
    runtime.register(FunctionConfig("failing", "fn.fail", str(code_dir), {}))
    result = await runtime.invoke("failing", b'{"x": 42}')
    assert result.function_error == "Unhandled"
    error = result.json()
    assert error["errorType"] == "ValueError" and error["errorMessage"] == "bad input: 42"
    assert error["requestId"] == result.request_id and error["stackTrace"]
    assert "[ERROR] ValueError: bad input: 42" in result.log_tail
    again = await runtime.invoke("failing", b'{"x": 1}')
    assert again.init_duration_ms is None  # a handled failure does not reset the environment
    assert runtime.stats()["failing"]["errors"] == 2 and runtime.stats()["failing"]["cold_starts"] == 1


@pytest.mark.timeout(60)
async def test_timeout_kills_environment(runtime, write_module, code_dir):
    write_module("fn", COUNTER)
    runtime.register(FunctionConfig("sleepy", "fn.slow", str(code_dir), {}, timeout_s=0.5))
    warm = await runtime.invoke("sleepy", b'{"sleep": 0.01}')
    pid = warm.json()["pid"]
    started = time.perf_counter()
    result = await runtime.invoke("sleepy", b'{"sleep": 30}')
    elapsed = time.perf_counter() - started
    assert result.function_error == "Unhandled"
    assert result.json() == {
        "errorType": "Sandbox.Timedout",
        "errorMessage": f"RequestId: {result.request_id} Error: Task timed out after 0.50 seconds",
    }
    assert 0.45 < elapsed < 3.0
    assert "Task timed out after 0.50 seconds" in result.log_tail and "Status: timeout" in result.log_tail
    await asyncio.sleep(0.2)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # the timed-out environment was killed
    after = await runtime.invoke("sleepy", b'{"sleep": 0.01}')
    assert after.function_error is None and after.init_duration_ms is not None and after.json()["pid"] != pid
    assert runtime.stats()["sleepy"]["timeouts"] == 1
    # a per-invocation timeout overrides the function's
    quick = await runtime.invoke("sleepy", b'{"sleep": 5}', timeout_s=0.2)
    assert quick.error_type == "Sandbox.Timedout" and "after 0.20 seconds" in quick.json()["errorMessage"]


@pytest.mark.timeout(60)
async def test_crash_is_reported_and_environment_replaced(runtime, write_module, code_dir):
    write_module("fn", COUNTER)
    runtime.register(FunctionConfig("crashy", "fn.crash", str(code_dir), {}))
    result = await runtime.invoke("crashy", b"{}")
    assert result.function_error == "Unhandled"
    assert result.json() == {
        "errorType": "Runtime.ExitError",
        "errorMessage": f"RequestId: {result.request_id} Error: Runtime exited with error: exit status 3",
    }
    assert "about to exit" in result.log_tail
    assert runtime.stats()["crashy"]["environments"] == 0
    # the next invocation gets a fresh environment (cold start) of a fixed function
    runtime.register(FunctionConfig("crashy", "fn.handler", str(code_dir), {}))
    ok = await runtime.invoke("crashy", b"{}")
    assert ok.function_error is None and ok.init_duration_ms is not None and ok.json()["count"] == 1


@pytest.mark.timeout(60)
async def test_init_errors(runtime, write_module, code_dir):
    write_module("broken_import", "import module_that_does_not_exist\n\ndef handler(e, c):\n    return 1\n")
    write_module("raises_at_import", "raise RuntimeError('no config')\n")
    write_module("exits_at_import", "import os\nos._exit(7)\n")
    runtime.register(FunctionConfig("imp", "broken_import.handler", str(code_dir), {}))
    runtime.register(FunctionConfig("rte", "raises_at_import.handler", str(code_dir), {}))
    runtime.register(FunctionConfig("nohandler", "os.path.not_there", str(code_dir), {}))
    runtime.register(FunctionConfig("exits", "exits_at_import.handler", str(code_dir), {}))

    result = await runtime.invoke("imp", b"{}")
    assert result.function_error == "Unhandled"
    error = result.json()
    assert error["errorType"] == "Runtime.ImportModuleError"
    assert "No module named 'module_that_does_not_exist'" in error["errorMessage"]
    assert result.init_duration_ms is not None
    assert "INIT_REPORT" in result.log_tail and "Runtime.ImportModuleError" in result.log_tail
    # every invocation retries INIT, as Lambda does after a failed init
    again = await runtime.invoke("imp", b"{}")
    assert again.error_type == "Runtime.ImportModuleError"
    assert runtime.stats()["imp"]["cold_starts"] == 2 and runtime.stats()["imp"]["environments"] == 0

    rte = await runtime.invoke("rte", b"{}")
    assert rte.error_type == "RuntimeError" and rte.json()["errorMessage"] == "no config"

    missing = await runtime.invoke("nohandler", b"{}")
    assert missing.error_type == "Runtime.HandlerNotFound"

    exits = await runtime.invoke("exits", b"{}")
    assert exits.error_type == "Runtime.ExitError" and "exit status 7" in exits.json()["errorMessage"]


@pytest.mark.timeout(60)
async def test_init_timeout(runtime, write_module, code_dir):
    """An INIT longer than its limit is retried once within the invocation, bounded by the function's timeout (as
    Lambda does); when the retry runs out too, the invocation fails with Sandbox.Timedout and no environment stays."""
    write_module("slow_import", "import time\ntime.sleep(30)\n\ndef handler(e, c):\n    return 1\n")
    runtime.register(FunctionConfig("slowinit", "slow_import.handler", str(code_dir), {}, init_timeout_s=0.5,
                                    timeout_s=1.0))
    started = time.perf_counter()
    result = await runtime.invoke("slowinit", b"{}")
    assert time.perf_counter() - started < 5
    assert result.error_type == "Sandbox.Timedout"
    assert result.json()["errorMessage"] == (
        f"RequestId: {result.request_id} Error: INIT phase timed out after 1.00 seconds")
    assert runtime.stats()["slowinit"]["environments"] == 0


@pytest.mark.timeout(60)
async def test_an_init_past_the_limit_is_retried_with_the_function_timeout(runtime, write_module, code_dir):
    """Lambda retries a timed-out INIT at the first invocation with the function's timeout
    (https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtime-environment.html): an INIT of 1 s under a 0.5 s
    limit costs the invocation a second try, not an error, and the function keeps one environment."""
    write_module("slowish", "import time\ntime.sleep(1.0)\n\ndef handler(e, c):\n    return 7\n")
    runtime.register(FunctionConfig("slowish", "slowish.handler", str(code_dir), {}, init_timeout_s=0.5,
                                    timeout_s=10.0, max_concurrency=1))
    result = await runtime.invoke("slowish", b"{}")
    assert result.function_error is None and result.json() == 7
    stats = runtime.stats()["slowish"]
    assert stats["environments"] == 1 and stats["cold_starts"] == 2 and stats["errors"] == 0
    assert (await runtime.invoke("slowish", b"{}")).json() == 7  # the retried environment stays warm
    assert runtime.stats()["slowish"]["cold_starts"] == 2


@pytest.mark.timeout(60)
async def test_environment_killed_while_idle_is_replaced(runtime, write_module, code_dir):
    write_module("fn", COUNTER)
    runtime.register(FunctionConfig("victim", "fn.handler", str(code_dir), {}))
    pid = (await runtime.invoke("victim", b"{}")).json()["pid"]
    os.kill(pid, signal.SIGKILL)
    for _ in range(100):
        if runtime.stats()["victim"]["environments"] == 0:
            break
        await asyncio.sleep(0.02)
    assert runtime.stats()["victim"]["environments"] == 0
    result = await runtime.invoke("victim", b"{}")
    assert result.function_error is None and result.init_duration_ms is not None
    assert result.json()["pid"] != pid and result.json()["count"] == 1


@pytest.mark.timeout(60)
async def test_callable_object_handler_in_package(runtime, write_module, code_dir):
    write_module("agents.__init__", """
        class Planner:
            def __init__(self):
                self.seen = 0

            def __call__(self, event, context):
                self.seen += 1
                return {"seen": self.seen, "goal": event["goal"]}

        planner = Planner()
    """)
    runtime.register(FunctionConfig("planner", "agents.planner", str(code_dir), {}))
    assert (await runtime.invoke("planner", b'{"goal": "g"}')).json() == {"seen": 1, "goal": "g"}
    assert (await runtime.invoke("planner", b'{"goal": "h"}')).json() == {"seen": 2, "goal": "h"}


@pytest.mark.timeout(60)
async def test_platform_handler_from_interpreter_environment(runtime):
    runtime.register(FunctionConfig("echo", "soorma.local.runtime.echo.handler", None, {}))
    result = await runtime.invoke("echo", b'{"a": [1, 2]}')
    assert result.function_error is None and result.json() == {"a": [1, 2]}


@pytest.mark.timeout(60)
async def test_redeploy_replaces_environments(runtime, write_module, code_dir):
    write_module("fn", COUNTER)
    runtime.register(FunctionConfig("app", "fn.handler", str(code_dir), {"MY_SETTING": "v1"}))
    v1 = (await runtime.invoke("app", b"{}")).json()
    assert v1["env"]["MY_SETTING"] == "v1"
    runtime.register(FunctionConfig("app", "fn.handler", str(code_dir), {"MY_SETTING": "v2"}))
    v2 = (await runtime.invoke("app", b"{}")).json()
    assert v2["env"]["MY_SETTING"] == "v2" and v2["count"] == 1 and v2["pid"] != v1["pid"]
    await asyncio.sleep(0.5)
    with pytest.raises(ProcessLookupError):
        os.kill(v1["pid"], 0)
    runtime.unregister("app")
    with pytest.raises(FunctionNotFound):
        await runtime.invoke("app", b"{}")
    await asyncio.sleep(0.5)
    with pytest.raises(ProcessLookupError):
        os.kill(v2["pid"], 0)


@pytest.mark.timeout(60)
async def test_cancelled_caller_leaves_invocation_running(runtime, write_module, code_dir):
    write_module("fn", COUNTER)
    runtime.register(FunctionConfig("slowpoke", "fn.slow", str(code_dir), {}, max_concurrency=1))
    pid = (await runtime.invoke("slowpoke", b'{"sleep": 0}')).json()["pid"]
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(runtime.invoke("slowpoke", b'{"sleep": 0.6}'), 0.1)
    assert runtime.stats()["slowpoke"]["busy"] == 1
    # the environment is still the same one, reused once its invocation finished
    after = await runtime.invoke("slowpoke", b'{"sleep": 0}')
    assert after.json()["pid"] == pid and after.init_duration_ms is None


@pytest.mark.timeout(60)
async def test_close_terminates_busy_environments(tmp_path, write_module, code_dir):
    write_module("fn", COUNTER)
    lam = LocalLambda(logs_dir=tmp_path / "logs")
    lam.register(FunctionConfig("busy", "fn.slow", str(code_dir), {}))
    task = asyncio.ensure_future(lam.invoke("busy", b'{"sleep": 30}'))
    while lam.stats()["busy"]["busy"] == 0:
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)  # past INIT: the handler is sleeping
    started = time.perf_counter()
    await lam.close()
    result = await task
    assert time.perf_counter() - started < 5
    assert result.error_type == "Runtime.ExitError" and "signal: terminated" in result.json()["errorMessage"]
    with pytest.raises(RuntimeError):
        await lam.invoke("busy", b"{}")


def test_config_validation():
    with pytest.raises(ValueError):
        FunctionConfig("bad name", "m.h", None, {})
    with pytest.raises(ValueError):
        FunctionConfig("ok", "nodot", None, {})
    with pytest.raises(ValueError):
        FunctionConfig("ok", "m.h", None, {}, max_concurrency=0)


@pytest.mark.timeout(60)
async def test_runtime_api_headers_reach_the_handler(runtime, write_module, code_dir):
    """What the Runtime API's ``next`` response carries (request id, deadline, function ARN, trace id) is what
    awslambdaric hands the handler, per invocation."""
    write_module("ctx", """
        import os, time

        def handler(event, context):
            return {
                "request_id": context.aws_request_id,
                "arn": context.invoked_function_arn,
                "remaining_ms": context.get_remaining_time_in_millis(),
                "trace": os.environ.get("_X_AMZN_TRACE_ID"),
                "log_stream": context.log_stream_name,
                "log_group": context.log_group_name,
                "version": context.function_version,
            }
    """)
    runtime.register(FunctionConfig("ctx", "ctx.handler", str(code_dir), {}, timeout_s=3))
    first = await runtime.invoke("ctx", b"{}")
    second = await runtime.invoke("ctx", b"{}", timeout_s=1.5)
    a, b = first.json(), second.json()
    assert a["request_id"] == first.request_id and b["request_id"] == second.request_id
    assert a["arn"] == b["arn"] == "arn:aws:lambda:us-east-1:000000000000:function:ctx" == runtime.function_arn("ctx")
    assert 2000 < a["remaining_ms"] <= 3000 and 500 < b["remaining_ms"] <= 1500  # the deadline is per invocation
    for body in (a, b):
        root, parent, sampled = body["trace"].split(";")
        assert re.fullmatch(r"Root=1-[0-9a-f]{8}-[0-9a-f]{24}", root)
        assert re.fullmatch(r"Parent=[0-9a-f]{16}", parent) and sampled == "Sampled=0"
    assert a["trace"] != b["trace"]
    assert a["log_group"] == "/aws/lambda/ctx" and a["log_stream"] == b["log_stream"] and a["version"] == "$LATEST"
