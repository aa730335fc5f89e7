"""soorma-core's ``soorma_common.a2a``."""

from soorma.a2a import (
    A2AAgentCard,
    A2AAuthentication,
    A2AAuthType,
    A2AMessage,
    A2APart,
    A2ASkill,
    A2ATask,
    A2ATaskResponse,
    A2ATaskStatus,
)

__all__ = ["A2AAgentCard", "A2AAuthType", "A2AAuthentication", "A2AMessage", "A2APart", "A2ASkill", "A2ATask",
           "A2ATaskResponse", "A2ATaskStatus"]
