"""Lambda entry point of the memory function: API Gateway HTTP API (payload format 2.0) events through Mangum.

The app is built on the first invocation and reused while the environment is warm; the database and the embedding
model are opened on the first request that needs them and then kept for the life of the execution environment.
"""

from soorma.functions.memory.app import create_app
from soorma.functions.shared.service import lazy_mangum_handler

handler = lazy_mangum_handler(create_app)
