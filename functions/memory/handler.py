"""Lambda entry point of the memory function: API Gateway HTTP API (payload format 2.0) events through Mangum.

The database and the embedding model are opened on the first request that needs them and then kept for the life
of the execution environment.
"""

from __future__ import annotations

from mangum import Mangum

from soorma.functions.memory.app import create_app

app = create_app()
handler = Mangum(app, lifespan="off")
