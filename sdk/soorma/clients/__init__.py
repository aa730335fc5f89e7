"""HTTP clients of the platform services (registry, memory, bus, gateway, tracker)."""

from .bus import BusClient
from .gateway import GatewayClient
from .memory import MemoryClient
from .registry import RegistryClient
from .schedules import ScheduleClient
from .tracker import TrackerClient

__all__ = ["BusClient", "GatewayClient", "MemoryClient", "RegistryClient", "ScheduleClient", "TrackerClient"]
