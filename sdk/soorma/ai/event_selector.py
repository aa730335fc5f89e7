"""Alias of :mod:`soorma.ai.selection` (``EventSelector``, ``EventSelectionError``)."""

from .selection import EventSelectionError, EventSelector

__all__ = ["EventSelectionError", "EventSelector"]
