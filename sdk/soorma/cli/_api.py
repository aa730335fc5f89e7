"""The CLI's one way to call the platform: the SDK's settings, a client of the wanted kind, and the exit codes a
command reports (no API key: 2; an unreachable API or an error answer: 1), for ``soorma goal``, ``soorma schedule``
and ``soorma webhooks``."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from soorma.cli._output import EXIT_USAGE, fail
from soorma.clients._http import HttpClient
from soorma.errors import PlatformConnectionError, PlatformError
from soorma.settings import Settings

C = TypeVar("C", bound=HttpClient)
T = TypeVar("T")


def api_settings() -> Settings:
    """The SDK's settings; exits 2 naming what to set when there is no API key."""
    settings = Settings.from_env()
    if not settings.api_key:
        fail("no API key: set SOORMA_API_URL and SOORMA_API_KEY, or start the local stack with `soorma local up`",
             code=EXIT_USAGE)
    return settings


def call_api(client_type: type[C], work: Callable[[C], Awaitable[T]], settings: Settings | None = None) -> T:
    """Run ``work`` with a ``client_type`` on ``settings`` (default :func:`api_settings`), closing it after; an
    unreachable API or an error answer exits 1 with the reason."""
    settings = settings if settings is not None else api_settings()

    async def run() -> T:
        client = client_type(settings.base_url, settings.api_key, timeout=settings.timeout)
        try:
            return await work(client)
        finally:
            await client.close()

    try:
        return asyncio.run(run())
    except PlatformConnectionError as exc:
        fail(f"cannot reach the API at {settings.base_url} ({exc.detail}); is the stack up? (`soorma local status`)")
    except PlatformError as exc:
        fail(f"HTTP {exc.status}: {exc.detail}")
