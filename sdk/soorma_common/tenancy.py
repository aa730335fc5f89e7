"""soorma-core's ``soorma_common.tenancy``.

:data:`DEFAULT_PLATFORM_TENANT_ID` is read as soorma-core reads it (``SOORMA_PLATFORM_TENANT_ID``, else its
all-zero default), for code that names it. It never chooses a tenant here: the platform takes the platform tenant
from the caller's credential (API key or token), and an event's ``platform_tenant_id`` is overwritten by the gateway
(docs/architecture.md). ``SOORMA_PLATFORM_TENANT_ID`` is declared once, in :mod:`soorma.settings`.
"""

from __future__ import annotations

from soorma.settings import PLATFORM_TENANT_ID

#: soorma-core's fallback platform tenant id.
SOORMA_CORE_DEFAULT_PLATFORM_TENANT_ID = "spt_00000000-0000-0000-0000-000000000000"
#: ``SOORMA_PLATFORM_TENANT_ID`` at import time, else soorma-core's default (as soorma-core evaluates it).
DEFAULT_PLATFORM_TENANT_ID: str = PLATFORM_TENANT_ID.get() or SOORMA_CORE_DEFAULT_PLATFORM_TENANT_ID

__all__ = ["DEFAULT_PLATFORM_TENANT_ID"]
