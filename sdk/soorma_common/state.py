"""soorma-core's ``soorma_common.state``."""

from soorma.state import StateAction, StateConfig, StateTransition

__all__ = ["StateAction", "StateConfig", "StateTransition"]
