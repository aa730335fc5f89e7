"""``LocalLambda``: the functions registered locally and their pools of execution environments.

Scheduling follows Lambda: a warm idle environment is reused (most recently used first, so module state
persists); a new one starts only when every environment of the function is busy and fewer than
``max_concurrency`` exist; beyond that an invocation waits in a FIFO queue for the next free environment (a queue,
not a throttle error). Idle environments are stopped after ``idle_timeout_s``. A redeploy (``register`` with a
known name) retires the old pool: idle environments stop at once, busy ones when their invocation ends.

Everything runs on the event loop that calls ``invoke``; one ``LocalLambda`` belongs to one loop.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import replace
from importlib import metadata
from pathlib import Path

from soorma.local.runtime.environment import Environment, InitOutcome, Outcome, RuntimeSettings
from soorma.local.runtime.logs import FunctionLogs, LogCallback, billed_ms, logger, report_line, tail
from soorma.local.runtime.types import FunctionConfig, FunctionNotFound, InvokeResult

#: Called with (function name, invocation payload, billed milliseconds, memory MB) after each invocation.
ReportCallback = Callable[[str, bytes, int, int], None]

try:
    _RIC_VERSION = metadata.version("awslambdaric")
except metadata.PackageNotFoundError:  # pragma: no cover - the local extra installs it
    _RIC_VERSION = "not installed"
_RUNTIME = f"python:{sys.version_info.major}.{sys.version_info.minor}"

#: Asynchronous (``Event``) invocations one function may have queued or running at once; beyond it
#: :meth:`LocalLambda.invoke_event` raises :class:`TooManyRequests` (Lambda's 429 ``TooManyRequestsException``), so a
#: flood of async invokes cannot grow the stack's memory without bound.
MAX_EVENT_QUEUE = 1000


class TooManyRequests(RuntimeError):
    """The function's asynchronous invocation queue is full (Lambda answers 429 ``TooManyRequestsException``,
    https://docs.aws.amazon.com/lambda/latest/api/API_Invoke.html#API_Invoke_Errors)."""


class _Function:
    """One registered function version and its environments."""

    def __init__(self, config: FunctionConfig, logs: FunctionLogs, counters: dict[str, int] | None = None) -> None:
        self.config = config
        self.logs = logs
        self.envs: set[Environment] = set()
        self.idle: list[Environment] = []  # a stack: the most recently used environment is reused first
        self.waiters: deque[asyncio.Future] = deque()
        self.retired = False
        self.counters = counters if counters is not None else {
            "invocations": 0, "errors": 0, "cold_starts": 0, "timeouts": 0}


class LocalLambda:
    """Runs registered functions in local execution environments (real awslambdaric subprocesses).

    ``logs_dir``: where ``<function>.log`` files go (``None``: no files). ``base_env``: variables every function
    gets under its own ``env`` (for the local stack: endpoints and credentials of the emulated AWS APIs).
    ``on_log(function, text)`` receives every log line as it is written (for a console). ``on_report(function,
    payload, billed_ms, memory_mb)`` receives each completed invocation's payload and REPORT figures (for the usage
    per goal, :class:`soorma.local.usage.ReportUsage`); it runs on the runtime's loop and must not block.
    """

    def __init__(self, logs_dir: str | Path | None = None, *, region: str = "us-east-1",
                 account_id: str = "000000000000", python: str = sys.executable,
                 base_env: Mapping[str, str] | None = None, on_log: LogCallback | None = None,
                 max_event_queue: int = MAX_EVENT_QUEUE, on_report: ReportCallback | None = None) -> None:
        self.logs_dir = Path(logs_dir) if logs_dir is not None else None
        self.settings = RuntimeSettings(python=python, region=region, account_id=account_id,
                                        base_env=dict(base_env or {}))
        self._on_log = on_log
        self.on_report = on_report
        self._functions: dict[str, _Function] = {}
        self._logs: dict[str, FunctionLogs] = {}
        self._all_envs: set[Environment] = set()
        self._background: set[asyncio.Future] = set()
        self._events_queued: dict[str, int] = {}  # function name → async invocations queued or running
        self.max_event_queue = max_event_queue
        self._closed = False

    # --- registry ---

    def register(self, config: FunctionConfig) -> None:
        """Add ``config``, or replace the function of that name (its old environments are drained and stopped)."""
        if self._closed:
            raise RuntimeError("LocalLambda is closed")
        logs = self._logs.get(config.name)
        if logs is None:
            logs = self._logs[config.name] = FunctionLogs(config.name, self.logs_dir, self._on_log)
        old = self._functions.get(config.name)
        self._functions[config.name] = _Function(config, logs, old.counters if old else None)
        if old is not None:
            self._retire(old)

    def unregister(self, name: str) -> None:
        """Remove a function; its busy environments finish their invocation and stop. Raises ``FunctionNotFound``."""
        fn = self._functions.pop(name, None)
        if fn is None:
            raise FunctionNotFound(name)
        self._retire(fn)

    def functions(self) -> list[FunctionConfig]:
        return [fn.config for fn in self._functions.values()]

    def function(self, name: str) -> FunctionConfig:
        fn = self._functions.get(name)
        if fn is None:
            raise FunctionNotFound(name)
        return fn.config

    def function_arn(self, name: str) -> str:
        return self.settings.function_arn(name)

    def log_path(self, name: str) -> Path | None:
        """The log file of ``name`` (``None`` without ``logs_dir``)."""
        logs = self._logs.get(name)
        return logs.path if logs is not None else (self.logs_dir / f"{name}.log" if self.logs_dir else None)

    def stats(self) -> dict[str, dict[str, int]]:
        """Per function: environments (alive or starting), busy, idle, waiting invocations, and counters
        (invocations, errors, cold_starts, timeouts)."""
        out: dict[str, dict[str, int]] = {}
        for name, fn in self._functions.items():
            idle = len(fn.idle)
            out[name] = {
                "environments": len(fn.envs),
                "busy": len(fn.envs) - idle,
                "idle": idle,
                "waiting": sum(1 for w in fn.waiters if not w.done()),
                **fn.counters,
            }
        return out

    # --- invocation ---

    async def invoke(self, name: str, payload: bytes, *, timeout_s: float | None = None,
                     client_context: str | None = None) -> InvokeResult:
        """Run one synchronous invocation (Lambda's ``RequestResponse``); raises ``FunctionNotFound``.

        Function failures are results, not exceptions: ``function_error == "Unhandled"`` with Lambda's error
        object as the payload. ``timeout_s`` overrides the function's timeout for this invocation;
        ``client_context`` is passed to the runtime as ``Lambda-Runtime-Client-Context`` (JSON text).
        If the caller is cancelled the invocation still runs to its end in its environment.
        """
        if self._closed:
            raise RuntimeError("LocalLambda is closed")
        request_id = str(uuid.uuid4())
        while True:
            if self._closed:
                raise RuntimeError("LocalLambda is closed")
            fn = self._functions.get(name)
            if fn is None:
                raise FunctionNotFound(name)
            env = await self._acquire(fn)
            if env is not None:
                break
        cfg = fn.config
        timeout = cfg.timeout_s if timeout_s is None else float(timeout_s)
        init: InitOutcome | None = None
        if env.process is None:
            init = await self._cold_start(fn, env, request_id)
            if init.status == "timeout":
                # Lambda: "If all three tasks do not complete within 10 seconds, Lambda retries the Init phase at
                # the time of the first function invocation with the configured function timeout."
                # https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtime-environment.html#runtimes-lifecycle-ib
                env, init = await self._retry_init(fn, env, request_id, init, timeout)
            if init.status != "ok":
                return self._init_failed(fn, env, request_id, init)
        fn.logs.platform(f"START RequestId: {request_id} Version: $LATEST")
        future = env.invoke(request_id, payload, timeout, client_context)
        try:
            outcome = await asyncio.shield(future)
        except asyncio.CancelledError:
            future.add_done_callback(lambda f: self._complete(fn, env, request_id, f.result(), init, payload))
            raise
        return self._complete(fn, env, request_id, outcome, init, payload)

    def invoke_event(self, name: str, payload: bytes) -> str:
        """Queue an asynchronous invocation (Lambda's ``Event`` type); returns its request id at once.

        Raises ``FunctionNotFound``, and :class:`TooManyRequests` when ``max_event_queue`` invocations of the
        function are already queued or running. Unlike Lambda there are no automatic retries and no destinations: a
        failure is only logged.
        """
        if name not in self._functions:
            raise FunctionNotFound(name)
        queued = self._events_queued.get(name, 0)
        if queued >= self.max_event_queue:
            raise TooManyRequests(f"Rate Exceeded: {queued} asynchronous invocations of {name} are already queued "
                                  f"(at most {self.max_event_queue})")
        self._events_queued[name] = queued + 1

        async def run() -> None:
            try:
                result = await self.invoke(name, payload)
                if result.function_error:
                    logger.warning("async invocation of %s failed: %s", name, result.payload[:500])
            except (FunctionNotFound, RuntimeError) as exc:
                logger.warning("async invocation of %s dropped: %s", name, exc)
            finally:
                left = self._events_queued.get(name, 1) - 1
                if left > 0:
                    self._events_queued[name] = left
                else:
                    self._events_queued.pop(name, None)

        task = asyncio.ensure_future(run())
        self._track(task)
        return "event-" + uuid.uuid4().hex  # the real request id is only known once an environment takes it

    async def _cold_start(self, fn: _Function, env: Environment, request_id: str) -> InitOutcome:
        fn.counters["cold_starts"] += 1
        fn.logs.platform(f"INIT_START Runtime Version: {_RUNTIME}\t"
                         f"Runtime Version ARN: local:awslambdaric:{_RIC_VERSION}")
        start = asyncio.ensure_future(env.start(request_id))
        try:
            return await asyncio.shield(start)
        except asyncio.CancelledError:
            # INIT goes on; the environment joins the pool when it is ready (or is dropped if it failed)
            start.add_done_callback(lambda t: (t.cancelled() or t.exception(), self._release(fn, env)))
            raise
        except BaseException:
            self._release(fn, env)
            raise

    async def _retry_init(self, fn: _Function, env: Environment, request_id: str, first: InitOutcome,
                          timeout_s: float) -> tuple[Environment, InitOutcome]:
        """The INIT of ``env`` timed out: run it again in a new environment that takes ``env``'s place (so the
        function never has more than ``max_concurrency``), bounded by the invocation's timeout instead of the
        10 s INIT limit, as Lambda does for on-demand functions. Returns the new environment and its outcome."""
        fn.logs.platform(f"INIT_REPORT Init Duration: {first.duration_ms:.2f} ms\tPhase: init\tStatus: timeout")
        retry = Environment(replace(fn.config, init_timeout_s=timeout_s), self.settings, fn.logs,
                            on_dead=lambda e, f=fn: self._on_dead(f, e))
        fn.envs.add(retry)
        self._all_envs.add(retry)
        self._discard(fn, env)  # the timed-out one was killed: its slot is the retry's, no waiter takes it
        return retry, await self._cold_start(fn, retry, request_id)

    def _init_failed(self, fn: _Function, env: Environment, request_id: str, init: InitOutcome) -> InvokeResult:
        """An invocation whose environment failed INIT returns the init error, as Lambda does."""
        fn.counters["invocations"] += 1
        fn.counters["errors"] += 1
        if init.status == "timeout":
            fn.counters["timeouts"] += 1
        init_report = (f"INIT_REPORT Init Duration: {init.duration_ms:.2f} ms\tPhase: init\t"
                       f"Status: {'timeout' if init.status == 'timeout' else 'error'}\tError Type: {init.error_type}")
        start, end = f"START RequestId: {request_id} Version: $LATEST", f"END RequestId: {request_id}"
        report = report_line(request_id, 0.0, fn.config.memory_mb, env._max_memory_mb, init.duration_ms,
                             "error", init.error_type)
        fn.logs.write(f"{init_report}\n{start}\n{end}\n{report}\n".encode())
        logger.info("%s %s", fn.config.name, report)
        self._release(fn, env)
        log_tail = tail(init.log, f"{init_report}\n{start}\n{end}\n{report}\n".encode())
        return InvokeResult(init.payload, "Unhandled", request_id, 0.0, init.duration_ms, log_tail)

    def _complete(self, fn: _Function, env: Environment, request_id: str, outcome: Outcome,
                  init: InitOutcome | None, payload: bytes = b"") -> InvokeResult:
        counters = fn.counters
        counters["invocations"] += 1
        status = error_type = None
        if outcome.status != "success":
            counters["errors"] += 1
            if outcome.status == "timeout":
                counters["timeouts"] += 1
                status = "timeout"
            elif outcome.status == "exit":
                status, error_type = "error", outcome.error_type
        init_ms = init.duration_ms if init is not None else None
        report = report_line(request_id, outcome.duration_ms, fn.config.memory_mb, outcome.max_memory_mb, init_ms,
                             status, error_type)
        closing = f"END RequestId: {request_id}\n{report}\n".encode()
        fn.logs.write(closing)
        logger.info("%s %s", fn.config.name, report)
        if self.on_report is not None:
            try:
                self.on_report(fn.config.name, payload, billed_ms(outcome.duration_ms, init_ms),
                               fn.config.memory_mb)
            except Exception:  # noqa: BLE001 - a usage observer never fails the invocation
                logger.warning("on_report failed for %s", fn.config.name, exc_info=True)
        self._release(fn, env)
        start = f"START RequestId: {request_id} Version: $LATEST\n".encode()
        log_tail = tail(init.log if init is not None else b"", start, outcome.log, closing)
        return InvokeResult(outcome.payload, outcome.function_error, request_id, round(outcome.duration_ms, 3),
                            round(init_ms, 3) if init_ms is not None else None, log_tail)

    # --- pool ---

    async def _acquire(self, fn: _Function) -> Environment | None:
        """An environment for one invocation (possibly not started yet), or ``None`` if ``fn`` was retired."""
        loop = asyncio.get_running_loop()
        while True:
            if fn.retired:
                return None
            idle = fn.idle
            while idle:
                env = idle.pop()
                if env.idle_handle is not None:
                    env.idle_handle.cancel()
                    env.idle_handle = None
                if env.alive:
                    return env
                self._discard(fn, env)
            if len(fn.envs) < fn.config.max_concurrency:
                env = Environment(fn.config, self.settings, fn.logs, on_dead=lambda e, f=fn: self._on_dead(f, e))
                fn.envs.add(env)
                self._all_envs.add(env)
                return env
            waiter = loop.create_future()
            fn.waiters.append(waiter)
            try:
                env = await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled() and waiter.result() is not None:
                    self._release(fn, waiter.result())
                raise
            if env is not None:
                if env.alive:
                    return env
                self._discard(fn, env)

    def _release(self, fn: _Function, env: Environment) -> None:
        """``env`` finished an invocation (or INIT): hand it to the next waiter, park it, or drop it."""
        if env.idle_handle is not None:
            env.idle_handle.cancel()
            env.idle_handle = None
        if not env.alive or fn.retired or self._closed:
            self._discard(fn, env)
            self._wake(fn)
            return
        while fn.waiters:
            waiter = fn.waiters.popleft()
            if not waiter.done():
                waiter.set_result(env)
                return
        fn.idle.append(env)
        env.idle_handle = asyncio.get_running_loop().call_later(fn.config.idle_timeout_s, self._reap, fn, env)

    def _wake(self, fn: _Function) -> None:
        """Capacity was freed: let the first waiter try again (it will start a new environment)."""
        while fn.waiters:
            waiter = fn.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _reap(self, fn: _Function, env: Environment) -> None:
        env.idle_handle = None
        if env in fn.idle:
            fn.idle.remove(env)
            logger.debug("reaping idle environment %s of %s", env.log_stream, fn.config.name)
            self._discard(fn, env)

    def _on_dead(self, fn: _Function, env: Environment) -> None:
        """An environment died on its own. Idle ones are dropped here; busy ones when their invocation ends."""
        if env in fn.idle:
            fn.idle.remove(env)
            if env.idle_handle is not None:
                env.idle_handle.cancel()
                env.idle_handle = None
            self._discard(fn, env)
            self._wake(fn)

    def _discard(self, fn: _Function, env: Environment) -> None:
        fn.envs.discard(env)
        if env not in self._all_envs:
            return
        self._all_envs.discard(env)
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # no loop (register/unregister from synchronous code): kill without waiting
            env._kill()
            return
        self._track(asyncio.ensure_future(env.stop()))

    def _retire(self, fn: _Function) -> None:
        fn.retired = True
        for env in list(fn.idle):
            if env.idle_handle is not None:
                env.idle_handle.cancel()
                env.idle_handle = None
            self._discard(fn, env)
        fn.idle.clear()
        while fn.waiters:
            waiter = fn.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # it looks the function up again: the new version, or FunctionNotFound

    def _track(self, task: asyncio.Future) -> None:
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # --- shutdown ---

    async def close(self) -> None:
        """Stop every environment (busy ones are terminated; their invocations fail) and close the log files."""
        if self._closed and not self._all_envs and not self._background:
            return
        self._closed = True
        for fn in list(self._functions.values()):
            self._retire(fn)
        for env in list(self._all_envs):
            self._all_envs.discard(env)
            self._track(asyncio.ensure_future(env.stop(grace_s=1.0)))
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)
        self._functions.clear()
        for logs in self._logs.values():
            logs.close()

    async def __aenter__(self) -> LocalLambda:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()
