"""The platform functions' FastAPI apps, built without a database or an event bus (nothing here serves a request)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI


class _Publisher:
    def publish(self, envelope: Any) -> None:  # pragma: no cover - never called: no request is served
        raise AssertionError("no request is served")


class _Embedder:
    dimensions = 384

    def embed(self, texts: Any) -> Any:  # pragma: no cover - never called: no request is served
        raise AssertionError("no request is served")


@pytest.fixture(scope="session")
def function_apps() -> dict[str, FastAPI]:
    """``{function: app}`` for every function of :data:`soorma.functions.http_api.HTTP_FUNCTIONS`."""
    from soorma.functions.gateway.app import create_app as gateway
    from soorma.functions.identity.app import create_app as identity
    from soorma.functions.memory.app import create_app as memory
    from soorma.functions.protocols.app import create_app as protocols
    from soorma.functions.registry.app import create_app as registry
    from soorma.functions.tracker.app import create_app as tracker

    db: Any = object()  # the apps only keep it; nothing here opens a connection
    return {"gateway": gateway(db=db, publisher=_Publisher()), "registry": registry(db=db),
            "memory": memory(db=db, embedder=_Embedder()), "tracker": tracker(db=db),
            "protocols": protocols(db=db, publisher=_Publisher()), "identity": identity(db=db)}


@pytest.fixture(scope="session")
def openapi_documents(function_apps: dict[str, FastAPI]) -> dict[str, dict[str, Any]]:
    """``{function: its OpenAPI document}`` (what ``/openapi/<function>.json`` serves)."""
    return {name: app.openapi() for name, app in function_apps.items()}
