"""The NATS → Lambda bridge as a long-running process: ``python -m soorma.infra.runtime.bridge_main``.

Runs on Fargate (one task; a second replica is safe, since a pull consumer hands each message to one fetcher).
Routes come from the registry (``registry.list_routes()``, every deployed agent with ``transport=nats``) plus the
tracker, exactly as on the local stack (:mod:`soorma.functions.bridge.routes`); functions are invoked with Lambda's synchronous
``Invoke``. SIGTERM (ECS stopping the task) drains in-flight invocations and acknowledgements before exit.

Environment: the secret ARNs of :mod:`.boot` (``SOORMA_APP_DB_SECRET_ARN``, ``SOORMA_NATS_SECRET_ARN``) and
``SOORMA_TRACKER_FUNCTION`` (the tracker's function name).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from concurrent.futures import ThreadPoolExecutor

from soorma import telemetry
from soorma.functions.bridge import Bridge, FunctionThrottled, InvokeResult
from soorma.functions.shared.settings import LOG_LEVEL
from soorma.infra.runtime import settings
from soorma.infra.runtime.boot import resolve_environment

log = logging.getLogger("soorma.infra.bridge")


class LambdaInvoker:
    """The bridge's :class:`~soorma.functions.bridge.Invoker` on AWS Lambda: synchronous ``Invoke``
    (``InvocationType=RequestResponse``, https://docs.aws.amazon.com/lambda/latest/api/API_Invoke.html).

    boto3 is blocking, so every call runs in a worker thread of the invoker's OWN :class:`ThreadPoolExecutor`, never
    asyncio's shared default pool (``min(32, cpus + 4)`` threads: six on a 2-core task), which long invocations of one
    route would fill, stalling every other route and anything else that uses ``asyncio.to_thread``. The pool has
    ``max_workers`` threads (default 64) and grows with :meth:`ensure_capacity` — :func:`run` calls it with the sum of
    the routes' ``max_concurrency`` on every route refresh, so each fetch worker of every route can have its
    invocation in flight at once. The HTTP connection pool is sized to match.

    Results: the response payload and ``X-Amz-Function-Error`` (``FunctionError``) as an
    :class:`~soorma.functions.bridge.InvokeResult` (a function error fails the batch in ``interpret``);
    ``TooManyRequestsException`` (HTTP 429, reserved or account concurrency exhausted) raises
    :class:`~soorma.functions.bridge.FunctionThrottled` with ``retry_after_s`` from its ``Retry-After`` header when
    present; any other error (``ResourceNotFoundException``, a network failure) propagates and fails the invocation.
    """

    def __init__(self, client=None, *, max_workers: int = 64, endpoint_url: str | None = None) -> None:
        if max_workers < 1:
            raise ValueError("max_workers must be >= 1")
        self.max_workers = max_workers
        self._client = client
        self._endpoint_url = endpoint_url
        self._executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="lambda-invoke")
        self._retired: list[ThreadPoolExecutor] = []

    @property
    def client(self):
        if self._client is None:
            import boto3
            from botocore.config import Config

            kw = {"endpoint_url": self._endpoint_url} if self._endpoint_url else {}
            self._client = boto3.client(
                "lambda",
                config=Config(read_timeout=900, retries={"max_attempts": 0},
                              max_pool_connections=max(64, self.max_workers)),
                **kw,
            )
        return self._client

    def ensure_capacity(self, concurrent_invocations: int) -> None:
        """Let at least ``concurrent_invocations`` calls run at once: a smaller pool is replaced by a bigger one
        (calls running on the old pool finish there). Never shrinks."""
        if concurrent_invocations <= self.max_workers:
            return
        old = self._executor
        self.max_workers = concurrent_invocations
        self._executor = ThreadPoolExecutor(max_workers=concurrent_invocations, thread_name_prefix="lambda-invoke")
        old.shutdown(wait=False)
        log.info("lambda invoker: %d worker threads", concurrent_invocations)

    def size_for(self, routes) -> None:
        """:meth:`ensure_capacity` for the sum of ``max_concurrency`` over ``routes`` (bridge routes)."""
        self.ensure_capacity(sum(route.max_concurrency for route in routes))

    def _invoke(self, function_name: str, payload: bytes) -> InvokeResult:
        client = self.client
        try:
            response = client.invoke(FunctionName=function_name, InvocationType="RequestResponse", Payload=payload)
        except client.exceptions.TooManyRequestsException as exc:
            raise FunctionThrottled(str(exc), retry_after_s=_retry_after(exc)) from exc
        return InvokeResult(payload=response["Payload"].read(), function_error=response.get("FunctionError"))

    async def invoke(self, function_name: str, payload: bytes) -> InvokeResult:
        """Invoke ``function_name`` with ``payload`` on the invoker's own thread pool (see the class docstring)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._invoke, function_name, payload)

    def close(self) -> None:
        """Stop the worker threads once their calls are done."""
        self._executor.shutdown(wait=True)


def _retry_after(exc) -> float | None:
    """``retryAfterSeconds`` (Lambda's ``Retry-After`` header on a 429) as seconds, if present and numeric."""
    response = getattr(exc, "response", None) or {}
    value = response.get("retryAfterSeconds") or (response.get("ResponseMetadata", {}).get("HTTPHeaders") or {}).get(
        "retry-after")
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


async def run() -> None:
    from soorma.functions.bridge.routes import RouteSource

    resolve_environment()
    source = RouteSource(settings.APP_DATABASE_URL.required(), tracker_function=settings.TRACKER_FUNCTION.required())
    invoker = LambdaInvoker()

    async def routes():
        current = await source.routes()
        invoker.size_for(current)  # every fetch worker of every route can have its invocation in flight
        return current

    bridge = Bridge(
        settings.NATS_URL.required(), routes, invoker,
        refresh_interval_s=settings.BRIDGE_REFRESH_SECONDS.get(),
        name=settings.BRIDGE_NAME.get(),
        region=os.environ.get("AWS_REGION", "aws"),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await bridge.start()
    log.info("bridge started")
    await stop.wait()
    log.info("stopping")
    await bridge.stop()
    invoker.close()


def main() -> None:
    logging.basicConfig(level=LOG_LEVEL.get(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # the bridge's own records as JSON (Powertools' formatter): the awslogs driver ships them to CloudWatch Logs,
    # where Logs Insights reads their fields (agent, consumer, tenant, event keys)
    telemetry.structured_logging("soorma-bridge", LOG_LEVEL.get())
    asyncio.run(run())


if __name__ == "__main__":
    main()
