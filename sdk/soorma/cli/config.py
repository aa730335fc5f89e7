"""Where the CLI finds the API endpoint and key: ``SOORMA_API_URL`` / ``SOORMA_API_KEY``, else the local stack's
``.soorma/credentials.json``."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import typer


@dataclass(frozen=True)
class ApiConfig:
    url: str
    key: str


def home() -> Path:
    return Path(os.environ.get("SOORMA_HOME") or Path.cwd() / ".soorma").resolve()


def api_config() -> ApiConfig:
    """The endpoint and key to use. Exits with a message naming what to set when there is no key."""
    url = os.environ.get("SOORMA_API_URL")
    key = os.environ.get("SOORMA_API_KEY")
    if not (url and key):
        try:
            creds = json.loads((home() / "credentials.json").read_text())
        except (FileNotFoundError, ValueError):
            creds = {}
        url = url or creds.get("api_url")
        key = key or creds.get("api_key")
    if not key:
        typer.secho(
            "no API key: set SOORMA_API_URL and SOORMA_API_KEY, or start the local stack with `soorma local up`",
            fg="red",
            err=True,
        )
        raise typer.Exit(2)
    return ApiConfig(url=(url or "http://127.0.0.1:8787").rstrip("/"), key=key)
