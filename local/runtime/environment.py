"""One execution environment: an awslambdaric subprocess (``python -m soorma.local.ric <handler>``, awslambdaric's own
entry that keeps the Runtime API's capability prefix) and its Runtime API server.

Lifecycle (as in Lambda): INIT ends when the runtime first polls ``/next`` (or fails with ``/init/error``, an exit
or the INIT timeout); then one invocation at a time; the environment dies on a timeout (killed, like Lambda's
sandbox reset), when its process exits, or when the manager stops it.

stdout and stderr share one pipe read without blocking on the event loop: lines go to the function's log and to
the current invocation's buffer (its ``log_tail``). awslambdaric flushes every write before it posts a result, so
draining the pipe when the result arrives attributes the invocation's output to it deterministically.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import secrets
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from soorma.local.runtime.api import Invocation, RuntimeApiServer
from soorma.local.runtime.logs import FunctionLogs, clean, timestamp as _ts
from soorma.local.runtime.types import FunctionConfig, error_payload

# OS-level variables an execution environment inherits from this process; everything else comes from the
# function's configuration (Lambda environments do not see the host's environment).
PASSTHROUGH_ENV = (
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "TMPDIR", "TEMP", "TMP",
    "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "VIRTUAL_ENV", "SYSTEMROOT",
    "LD_LIBRARY_PATH", "DYLD_LIBRARY_PATH", "PYTHONPATH",
)
# Variables that would switch awslambdaric into modes this runtime does not serve.
_STRIPPED_ENV = ("AWS_LAMBDA_MAX_CONCURRENCY", "_LAMBDA_TELEMETRY_LOG_FD",
                 "_LAMBDA_TELEMETRY_LOG_FD_PROVIDER_SOCKET", "AWS_LAMBDA_INITIALIZATION_TYPE")

# How Go (Lambda's RAPID) names the signals that end a runtime: "Runtime exited with error: signal: killed".
_SIGNAL_NAMES = {
    signal.SIGKILL: "killed", signal.SIGTERM: "terminated", signal.SIGSEGV: "segmentation fault",
    signal.SIGABRT: "aborted", signal.SIGBUS: "bus error", signal.SIGILL: "illegal instruction",
    signal.SIGFPE: "floating point exception", signal.SIGINT: "interrupt",
}
_MAX_PARTIAL = 64 * 1024
_MAX_CAPTURE = 64 * 1024
_MEMORY_READ_INTERVAL = 0.2


@dataclass(frozen=True)
class RuntimeSettings:
    """What every environment of one :class:`LocalLambda` shares."""

    python: str = sys.executable
    region: str = "us-east-1"
    account_id: str = "000000000000"
    base_env: dict[str, str] = field(default_factory=dict)

    def function_arn(self, name: str) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account_id}:function:{name}"


@dataclass
class InitOutcome:
    """How INIT ended. ``status``: ``"ok"``, ``"error"`` (init/error posted), ``"exit"`` or ``"timeout"``."""

    status: str
    duration_ms: float
    log: bytes = b""
    payload: bytes = b""
    error_type: str | None = None


@dataclass
class Outcome:
    """How one invocation ended. ``status``: ``"success"``, ``"error"``, ``"timeout"`` or ``"exit"``."""

    status: str
    payload: bytes
    duration_ms: float
    log: bytes
    max_memory_mb: int
    error_type: str | None = None

    @property
    def function_error(self) -> str | None:
        return None if self.status == "success" else "Unhandled"


class _Running:
    __slots__ = ("invocation", "future", "started", "timer", "timeout_s")

    def __init__(self, invocation: Invocation, future: asyncio.Future, timeout_s: float) -> None:
        self.invocation = invocation
        self.future = future
        self.timeout_s = timeout_s
        self.started = time.perf_counter()
        self.timer: asyncio.TimerHandle | None = None


def exit_reason(returncode: int) -> str:
    if returncode < 0:
        sig = -returncode
        try:
            name = _SIGNAL_NAMES.get(sig) or (signal.strsignal(sig) or f"signal {sig}").lower()
        except ValueError:
            name = f"signal {sig}"
        return f"Runtime exited with error: signal: {name}"
    if returncode == 0:
        return "Runtime exited without providing a reason"
    return f"Runtime exited with error: exit status {returncode}"


def _error_type_of(body: bytes) -> str | None:
    try:
        value = json.loads(body)
    except ValueError:
        return None
    return value.get("errorType") if isinstance(value, dict) else None


class Environment:
    """One execution environment of ``config``. ``start`` once, then ``invoke`` one event at a time."""

    def __init__(self, config: FunctionConfig, settings: RuntimeSettings, logs: FunctionLogs,
                 on_dead=None) -> None:
        self.config = config
        self.settings = settings
        self.logs = logs
        self.on_dead = on_dead  # called once when the environment can no longer serve invocations
        self.log_stream = time.strftime("%Y/%m/%d/", time.gmtime()) + "[$LATEST]" + secrets.token_hex(16)
        self.server = RuntimeApiServer(self)
        self.process: asyncio.subprocess.Process | None = None
        self.init_duration_ms: float | None = None
        self.invocations = 0
        self._doomed = False  # killed or failed: never hand it another event
        self._dead_reported = False
        self._init_future: asyncio.Future | None = None
        self._init_timer: asyncio.TimerHandle | None = None
        self._init_request_id = ""
        self._spawned = 0.0
        self._running: _Running | None = None
        self._exit_task: asyncio.Future | None = None
        self._fd: int | None = None
        self._partial = b""
        self._capture: bytearray | None = None
        self._max_memory_mb = 0
        self._memory_read_at = -1.0
        self._status_fd: int | None = None
        self.idle_handle: asyncio.TimerHandle | None = None  # the manager's reaping timer

    # --- state ---

    @property
    def alive(self) -> bool:
        return (not self._doomed and self.process is not None and self.process.returncode is None)

    @property
    def busy(self) -> bool:
        return self._running is not None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    # --- INIT ---

    def child_env(self) -> dict[str, str]:
        cfg, settings = self.config, self.settings
        env = {k: os.environ[k] for k in PASSTHROUGH_ENV if k in os.environ}
        env.update(settings.base_env)
        env.update(cfg.env)
        task_root = str(Path(cfg.code_dir).resolve()) if cfg.code_dir else os.getcwd()
        paths = [task_root] if cfg.code_dir else []
        if env.get("PYTHONPATH"):
            paths.append(env["PYTHONPATH"])
        for key in _STRIPPED_ENV:
            env.pop(key, None)
        env.update({
            "AWS_LAMBDA_RUNTIME_API": self.server.address,
            "_HANDLER": cfg.handler,
            "LAMBDA_TASK_ROOT": task_root,
            "LAMBDA_RUNTIME_DIR": str(Path(settings.python).parent),
            "AWS_EXECUTION_ENV": f"AWS_Lambda_python{sys.version_info.major}.{sys.version_info.minor}",
            "AWS_LAMBDA_FUNCTION_NAME": cfg.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(cfg.memory_mb),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{cfg.name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": self.log_stream,
            "AWS_REGION": settings.region,
            "AWS_DEFAULT_REGION": settings.region,
            "TZ": ":UTC",
        })
        if paths:
            env["PYTHONPATH"] = os.pathsep.join(paths)
        else:
            env.pop("PYTHONPATH", None)
        return env

    async def start(self, request_id: str = "") -> InitOutcome:
        """Start the process and wait for INIT to end. On failure the environment is dead."""
        loop = asyncio.get_running_loop()
        self._init_request_id = request_id
        self._init_future = loop.create_future()
        self._capture = bytearray()
        await self.server.start()
        cfg = self.config
        cwd = str(Path(cfg.code_dir).resolve()) if cfg.code_dir else None
        read_fd, write_fd = os.pipe()
        self._spawned = time.perf_counter()
        try:
            self.process = await asyncio.create_subprocess_exec(
                # awslambdaric's entry, taught to keep the Runtime API's capability prefix (soorma.local.ric)
                self.settings.python, "-P", "-m", "soorma.local.ric", cfg.handler,
                stdin=asyncio.subprocess.DEVNULL, stdout=write_fd, stderr=write_fd,
                env=self.child_env(), cwd=cwd, start_new_session=True,
            )
        except BaseException:
            os.close(read_fd)
            self._doomed = True
            self.server.close()
            raise
        finally:
            os.close(write_fd)
        os.set_blocking(read_fd, False)
        self._fd = read_fd
        loop.add_reader(read_fd, self._read_output)
        self._exit_task = asyncio.ensure_future(self.process.wait())
        self._exit_task.add_done_callback(self._on_exit)
        self._init_timer = loop.call_later(cfg.init_timeout_s, self._on_init_timeout)
        outcome: InitOutcome = await self._init_future
        return outcome

    def _end_init(self, outcome: InitOutcome) -> None:
        fut = self._init_future
        if fut is None or fut.done():
            return
        if self._init_timer is not None:
            self._init_timer.cancel()
            self._init_timer = None
        self._read_output()
        self._flush_partial()
        outcome.log = bytes(self._capture or b"")
        self._capture = None
        self.init_duration_ms = outcome.duration_ms
        if outcome.status == "ok":
            self._memory_mb()
        else:
            self._doom()
        fut.set_result(outcome)

    def _init_elapsed_ms(self) -> float:
        return (time.perf_counter() - self._spawned) * 1000.0

    def _on_init_timeout(self) -> None:
        self._init_timer = None
        secs = self.config.init_timeout_s
        self._kill()
        self._platform_line(f"{_ts()} {self._init_request_id} INIT phase timed out after {secs:.2f} seconds")
        self._end_init(InitOutcome(
            "timeout", self._init_elapsed_ms(),
            payload=error_payload("Sandbox.Timedout",
                                  f"RequestId: {self._init_request_id} Error: INIT phase timed out after "
                                  f"{secs:.2f} seconds"),
            error_type="Sandbox.Timedout"))

    # --- RuntimeListener ---

    def on_next(self) -> None:
        if self._init_future is not None and not self._init_future.done():
            self._end_init(InitOutcome("ok", self._init_elapsed_ms()))

    def on_init_error(self, body: bytes, error_type: str | None) -> None:
        error_type = error_type or _error_type_of(body) or "Runtime.Unknown"
        if not body:
            body = error_payload(error_type, "Runtime failed to initialize")
        if self._init_future is not None and not self._init_future.done():
            self._end_init(InitOutcome("error", self._init_elapsed_ms(), payload=body, error_type=error_type))
        else:  # a runtime may not report init errors after INIT; treat as fatal for the environment
            self._doom()

    def on_response(self, request_id: str, body: bytes) -> None:
        running = self._running
        if running is not None and running.invocation.request_id == request_id:
            self._finish(running, "success", body)

    def on_error(self, request_id: str, body: bytes, error_type: str | None) -> None:
        running = self._running
        if running is None or running.invocation.request_id != request_id:
            return
        error_type = _error_type_of(body) or error_type or "Runtime.Unknown"
        if not body:
            body = error_payload(error_type, "")
        self._finish(running, "error", body, error_type)

    # --- invocations ---

    def invoke(self, request_id: str, payload: bytes, timeout_s: float,
               client_context: str | None = None) -> asyncio.Future:
        """Hand one event to the runtime; the future resolves to an :class:`Outcome` (never raises)."""
        if self._running is not None:
            raise RuntimeError("environment is busy")
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        if not self.alive:
            fut.set_result(Outcome("exit", error_payload(
                "Runtime.ExitError", f"RequestId: {request_id} Error: {exit_reason(self._returncode())}"),
                0.0, b"", self._max_memory_mb, "Runtime.ExitError"))
            return fut
        invocation = Invocation(
            request_id, payload, int(time.time() * 1000 + timeout_s * 1000),
            self.settings.function_arn(self.config.name),
            f"Root=1-{int(time.time()):08x}-{secrets.token_hex(12)};Parent={secrets.token_hex(8)};Sampled=0",
            client_context)
        running = _Running(invocation, fut, timeout_s)
        running.timer = loop.call_later(timeout_s, self._on_timeout, running)
        self._running = running
        self._capture = bytearray()
        self.invocations += 1
        self.server.deliver(invocation)
        return fut

    def _finish(self, running: _Running, status: str, payload: bytes, error_type: str | None = None) -> None:
        if self._running is not running:
            return
        duration_ms = (time.perf_counter() - running.started) * 1000.0
        if running.timer is not None:
            running.timer.cancel()
        self._read_output()
        self._flush_partial()
        log = bytes(self._capture or b"")
        self._capture = None
        self._running = None
        if not running.future.done():
            running.future.set_result(Outcome(status, payload, duration_ms, log, self._memory_mb(), error_type))

    def _on_timeout(self, running: _Running) -> None:
        if self._running is not running:
            return
        running.timer = None
        secs = running.timeout_s
        rid = running.invocation.request_id
        self._kill()
        self.server.withdraw()
        self._read_output()
        self._platform_line(f"{_ts()} {rid} Task timed out after {secs:.2f} seconds")
        self._finish(running, "timeout", error_payload(
            "Sandbox.Timedout", f"RequestId: {rid} Error: Task timed out after {secs:.2f} seconds"),
            "Sandbox.Timedout")

    # --- process end ---

    def _returncode(self) -> int:
        rc = self.process.returncode if self.process is not None else None
        return -signal.SIGKILL if rc is None else rc

    def _on_exit(self, _task) -> None:
        rc = self._returncode()
        self._doomed = True
        # leftovers of the process group (children the handler started) go with the environment
        self._killpg(signal.SIGKILL)
        reason = exit_reason(rc)
        if self._init_future is not None and not self._init_future.done():
            self._end_init(InitOutcome(
                "exit", self._init_elapsed_ms(),
                payload=error_payload("Runtime.ExitError", f"RequestId: {self._init_request_id} Error: {reason}"),
                error_type="Runtime.ExitError"))
        running = self._running
        if running is not None:
            self._read_output()
            self._platform_line(f"RequestId: {running.invocation.request_id} Error: {reason}")
            self._platform_line("Runtime.ExitError")
            self._finish(running, "exit", error_payload(
                "Runtime.ExitError", f"RequestId: {running.invocation.request_id} Error: {reason}"),
                "Runtime.ExitError")
        self._close_io()
        self._report_dead()

    def _doom(self) -> None:
        if not self._doomed:
            self._doomed = True
            self._kill()
        self._report_dead()

    def _report_dead(self) -> None:
        if not self._dead_reported:
            self._dead_reported = True
            if self.on_dead is not None:
                self.on_dead(self)

    def _killpg(self, sig: int) -> None:
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def _kill(self) -> None:
        self._doomed = True
        if self.process is not None and self.process.returncode is None:
            self._killpg(signal.SIGKILL)

    async def stop(self, grace_s: float = 2.0) -> None:
        """SIGTERM the environment (SIGKILL after ``grace_s``) and release its socket and pipe."""
        self._doomed = True
        proc = self.process
        if proc is not None and proc.returncode is None and self._exit_task is not None:
            self._killpg(signal.SIGTERM)
            try:
                await asyncio.wait_for(asyncio.shield(self._exit_task), grace_s)
            except TimeoutError:
                self._killpg(signal.SIGKILL)
                await asyncio.shield(self._exit_task)
        elif self._exit_task is not None and not self._exit_task.done():
            await asyncio.shield(self._exit_task)
        if self._exit_task is not None:
            await asyncio.sleep(0)  # let _on_exit run
        self._close_io()
        self._report_dead()

    def _close_io(self) -> None:
        self.server.close()
        self._close_status()
        if self._fd is not None:
            self._read_output()
            self._flush_partial()
            self._close_pipe()

    # --- output ---

    def _read_output(self) -> None:
        fd = self._fd
        while fd is not None:
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                return
            except OSError:
                chunk = b""
            if not chunk:
                self._flush_partial()
                self._close_pipe()
                return
            self._emit(chunk)

    def _emit(self, chunk: bytes) -> None:
        data = self._partial + chunk if self._partial else chunk
        cut = data.rfind(b"\n")
        if cut < 0:
            self._partial = data
            if len(data) > _MAX_PARTIAL:
                self._flush_partial()
            return
        self._partial = data[cut + 1:]
        self._write(data[:cut + 1])

    def _flush_partial(self) -> None:
        if self._partial:
            data, self._partial = self._partial, b""
            self._write(data + b"\n")

    def _write(self, data: bytes) -> None:
        data = clean(data)
        self.logs.write(data)
        capture = self._capture
        if capture is not None:
            capture += data
            if len(capture) > _MAX_CAPTURE:
                del capture[: len(capture) - _MAX_CAPTURE // 2]

    def _platform_line(self, line: str) -> None:
        self._flush_partial()
        self._write(line.encode() + b"\n")

    def _close_pipe(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            asyncio.get_running_loop().remove_reader(fd)
        except RuntimeError:  # loop closed
            pass
        os.close(fd)

    def _memory_mb(self) -> int:
        """Peak resident memory of the runtime process (``VmHWM``, Linux), like Lambda's Max Memory Used.

        Read at most every 0.2 s (the peak is monotonic, so a skipped read is caught by the next one); elsewhere
        than Linux it stays 0.
        """
        now = time.monotonic()
        proc = self.process
        if now - self._memory_read_at < _MEMORY_READ_INTERVAL or proc is None or proc.returncode is not None:
            return self._max_memory_mb
        self._memory_read_at = now
        try:
            if self._status_fd is None:
                self._status_fd = os.open(f"/proc/{proc.pid}/status", os.O_RDONLY)
            status = os.pread(self._status_fd, 8192, 0)
            at = status.find(b"VmHWM:")
            if at >= 0:
                kb = int(status[at + 6:status.index(b"kB", at)])
                self._max_memory_mb = max(self._max_memory_mb, math.ceil(kb / 1024))
        except (OSError, ValueError):
            self._memory_read_at = float("inf")  # no procfs: stop trying
        return self._max_memory_mb

    def _close_status(self) -> None:
        fd, self._status_fd = self._status_fd, None
        if fd is not None:
            os.close(fd)


__all__ = ["Environment", "InitOutcome", "Outcome", "RuntimeSettings", "exit_reason"]
