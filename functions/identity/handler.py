"""Lambda entry point of the identity function: ``soorma.functions.identity.handler.handler``, the identity service's
FastAPI app (:mod:`soorma.functions.identity.app`) through Mangum, built on the first invocation and reused while the
environment is warm."""

from soorma.functions.identity.app import create_app
from soorma.functions.shared.service import lazy_mangum_handler

handler = lazy_mangum_handler(create_app)
