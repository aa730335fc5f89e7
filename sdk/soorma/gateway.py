"""soorma-core's ``soorma.gateway`` module: :class:`A2AGatewayHelper` (see :mod:`soorma.a2a`)."""

from .a2a import A2AGatewayHelper

__all__ = ["A2AGatewayHelper"]
