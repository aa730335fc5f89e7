"""SDK settings read from the environment (``SOORMA_*``; see docs/architecture.md "Settings").

One base URL (``SOORMA_API_URL``) serves every route; soorma-core's per-service variables
(``SOORMA_REGISTRY_URL``, ``SOORMA_EVENT_SERVICE_URL``, ``SOORMA_MEMORY_URL``, ``SOORMA_TRACKER_URL``) override the
base for that one client when set, so code and ``.env`` files written for soorma-core keep working.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Mapping

DEFAULT_API_URL = "http://127.0.0.1:8787"
DEFAULT_TIMEOUT = 30.0


def _clean(url: str | None) -> str | None:
    url = (url or "").strip()
    return url.rstrip("/") or None


def _credentials(env: Mapping[str, str]) -> dict[str, str]:
    """The local stack's ``$SOORMA_HOME/credentials.json`` (``{"api_url", "api_key", ...}``; default home
    ``./.soorma``), or ``{}``. Only a fallback for scripts run next to ``soorma local``; a deployed function always
    gets ``SOORMA_API_URL``/``SOORMA_API_KEY``."""
    path = os.path.join(env.get("SOORMA_HOME") or ".soorma", "credentials.json")
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, str) and v}


@dataclass(frozen=True)
class Settings:
    """Where the platform is and how to authenticate.

    ``api_url``: base URL of all routes. ``api_key``: ``sk_<key_id>_<secret>`` sent as ``Authorization: Bearer``.
    ``registry_url`` / ``event_service_url`` / ``memory_url`` / ``tracker_url``: per-service overrides (``None`` =
    use ``api_url``). ``timeout``: seconds per HTTP request.
    """

    api_url: str = DEFAULT_API_URL
    api_key: str | None = None
    registry_url: str | None = None
    event_service_url: str | None = None
    memory_url: str | None = None
    tracker_url: str | None = None
    timeout: float = DEFAULT_TIMEOUT

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Settings":
        """Read settings from ``environ`` (default ``os.environ``).

        ``SOORMA_AUTH_TOKEN`` (soorma-core's name) and ``$SOORMA_HOME/credentials.json`` (as the CLI reads it) are
        fallbacks for the key, the file also for the URL;
        ``SOORMA_MEMORY_SERVICE_URL`` / ``SOORMA_TRACKER_SERVICE_URL`` (names soorma-core also used) are fallbacks for
        the memory and tracker URLs. ``SOORMA_HTTP_TIMEOUT`` sets the timeout (seconds).
        """
        env = os.environ if environ is None else environ
        timeout = env.get("SOORMA_HTTP_TIMEOUT")
        key = env.get("SOORMA_API_KEY") or env.get("SOORMA_AUTH_TOKEN")
        url = _clean(env.get("SOORMA_API_URL"))
        creds = _credentials(env) if not (key and url) else {}
        return cls(
            api_url=url or _clean(creds.get("api_url")) or DEFAULT_API_URL,
            api_key=key or creds.get("api_key"),
            registry_url=_clean(env.get("SOORMA_REGISTRY_URL")),
            event_service_url=_clean(env.get("SOORMA_EVENT_SERVICE_URL")),
            memory_url=_clean(env.get("SOORMA_MEMORY_URL") or env.get("SOORMA_MEMORY_SERVICE_URL")),
            tracker_url=_clean(env.get("SOORMA_TRACKER_URL") or env.get("SOORMA_TRACKER_SERVICE_URL")),
            timeout=float(timeout) if timeout else DEFAULT_TIMEOUT,
        )

    @property
    def base_url(self) -> str:
        """``api_url`` without a trailing slash (the gateway's own routes: goals, publish)."""
        return self.api_url.rstrip("/")

    @property
    def registry_base(self) -> str:
        return self.registry_url or self.base_url

    @property
    def bus_base(self) -> str:
        """Where ``POST /v1/events/publish`` goes (soorma-core's event service URL, else the base)."""
        return self.event_service_url or self.base_url

    @property
    def memory_base(self) -> str:
        return self.memory_url or self.base_url

    @property
    def tracker_base(self) -> str:
        return self.tracker_url or self.base_url
