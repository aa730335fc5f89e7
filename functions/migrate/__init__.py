"""Versioned SQL migrations for the platform database (see :mod:`soorma.functions.migrate.app`)."""

from soorma.functions.migrate.app import apply, pending

__all__ = ["apply", "pending"]
