"""Lambda entry point of the registry: ``soorma.functions.registry.handler.handler`` (API Gateway HTTP API v2).

The app is built on the first invocation (from ``SOORMA_APP_DATABASE_URL``) and reused while the environment is warm.
"""

from soorma.functions.registry.app import create_app
from soorma.functions.shared.service import lazy_mangum_handler

handler = lazy_mangum_handler(create_app)
