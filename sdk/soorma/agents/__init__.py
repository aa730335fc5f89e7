"""Agent kinds: ``Agent`` (raw events), ``Worker`` (tasks), ``Tool`` (immediate answers), ``Planner`` (goals)."""

from .base import Agent
from .planner import Planner
from .tool import Tool
from .worker import Worker

__all__ = ["Agent", "Planner", "Tool", "Worker"]
