"""The NATS → Lambda bridge as a long-running process: ``python -m soorma.infra.runtime.bridge_main``.

Runs on Fargate (one task; a second replica is safe, since a pull consumer hands each message to one fetcher).
Routes come from the registry (``registry.list_routes()``, every deployed agent with ``transport=nats``) plus the
tracker, exactly as on the local stack (:mod:`soorma.local.routes`); functions are invoked with Lambda's synchronous
``Invoke``. SIGTERM (ECS stopping the task) drains in-flight invocations and acknowledgements before exit.

Environment: the secret ARNs of :mod:`.boot` (``SOORMA_APP_DB_SECRET_ARN``, ``SOORMA_NATS_SECRET_ARN``) and
``SOORMA_TRACKER_FUNCTION`` (the tracker's function name).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal

from soorma.functions.bridge import Bridge, FunctionThrottled, InvokeResult
from soorma.infra.runtime.boot import resolve_environment

log = logging.getLogger("soorma.infra.bridge")


class LambdaInvoker:
    """The bridge's :class:`~soorma.functions.bridge.Invoker` on AWS Lambda (``InvocationType=RequestResponse``)."""

    def __init__(self, client=None) -> None:
        if client is None:
            import boto3
            from botocore.config import Config

            client = boto3.client(
                "lambda", config=Config(read_timeout=900, retries={"max_attempts": 0}, max_pool_connections=64)
            )
        self.client = client

    def _invoke(self, function_name: str, payload: bytes) -> InvokeResult:
        try:
            response = self.client.invoke(FunctionName=function_name, InvocationType="RequestResponse", Payload=payload)
        except self.client.exceptions.TooManyRequestsException as exc:
            raise FunctionThrottled(str(exc)) from exc
        return InvokeResult(payload=response["Payload"].read(), function_error=response.get("FunctionError"))

    async def invoke(self, function_name: str, payload: bytes) -> InvokeResult:
        return await asyncio.to_thread(self._invoke, function_name, payload)


async def run() -> None:
    from soorma.local.routes import RouteSource

    resolve_environment()
    source = RouteSource(os.environ["SOORMA_APP_DATABASE_URL"], tracker_function=os.environ["SOORMA_TRACKER_FUNCTION"])
    bridge = Bridge(
        os.environ["SOORMA_NATS_URL"], source.routes, LambdaInvoker(),
        refresh_interval_s=float(os.environ.get("SOORMA_BRIDGE_REFRESH_SECONDS", "5")),
        name=os.environ.get("SOORMA_BRIDGE_NAME", "aws"),
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


def main() -> None:
    logging.basicConfig(level=os.environ.get("SOORMA_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(run())


if __name__ == "__main__":
    main()
