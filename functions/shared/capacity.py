"""How many execution environments each platform function may run at once, and the database connections that
makes: one table, read by the CDK app (each function's reserved concurrency, :mod:`soorma.infra.platform`) and by
the local stack (each function's ``max_concurrency`` in the local Lambda, and the embedded PostgreSQL's
``max_connections``, :mod:`soorma.local.stack`), so the local stack runs at the concurrency the cloud is sized for and
a plan that needs more connections than the database has fails locally too.

Every execution environment holds at most :data:`CONNECTIONS_PER_ENVIRONMENT` connections, so all of them at once need :func:`connections_needed`; tests/infra/test_connections.py checks that
against Aurora's ``max_connections`` at the cluster's maximum capacity, and tests/e2e/test_connection_load.py loads
the local stack at this concurrency.
"""

from __future__ import annotations

from typing import Mapping

#: Connections one execution environment's pool opens at most (:class:`soorma.functions.shared.db.Database`): a
#: Lambda execution environment serves one request at a time, and Aurora's connection limit is shared by every
#: environment.
POOL_MAX_SIZE = 2
#: Connections one execution environment holds at most: its pool, plus the one a long-poll waits on
#: (:meth:`soorma.functions.shared.db.Database.listen`).
CONNECTIONS_PER_ENVIRONMENT = POOL_MAX_SIZE + 1

#: function → reserved concurrency (execution environments at once). The HTTP functions get the most; the identity
#: service fewer (onboarding, and a token per principal every 15 minutes); the tracker consumes the event stream in
#: batches; the migrator and the registrar run at deploy only.
RESERVED_CONCURRENCY: Mapping[str, int] = {
    "registry": 10, "memory": 10, "gateway": 10, "protocols": 10, "identity": 4, "authorizer": 10, "tracker": 4,
    "migrate": 1, "registrar": 1, "webhooks": 1, "usage": 2,
}


def connections_needed(concurrency: Mapping[str, int] = RESERVED_CONCURRENCY) -> int:
    """Connections the platform's functions hold when every one runs all its execution environments, each holding
    its most (``concurrency`` defaults to :data:`RESERVED_CONCURRENCY`)."""
    return sum(concurrency.values()) * CONNECTIONS_PER_ENVIRONMENT
