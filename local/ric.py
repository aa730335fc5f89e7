"""``python -m soorma.local.ric HANDLER``: awslambdaric's own entry point (``python -m awslambdaric HANDLER``) for the
local runtime, where ``AWS_LAMBDA_RUNTIME_API`` carries a path prefix: ``127.0.0.1:<port>/<token>``.

The prefix is the execution environment's capability on its Runtime API (:mod:`soorma.local.runtime.api`).
awslambdaric's native client (``runtime_client``: next, response, error) builds its URLs as
``"http://" + AWS_LAMBDA_RUNTIME_API + "/2018-06-01/..."`` and needs nothing; its Python fallback
(:meth:`awslambdaric.lambda_runtime_client.BaseLambdaRuntimeClient.call_rapid`, used for ``init/error``) opens
``http.client.HTTPConnection(AWS_LAMBDA_RUNTIME_API)``, which refuses a path. :class:`PrefixedRuntimeClient` gives it
the ``host:port`` and puts the prefix in front of the path. Everything else (the bootstrap loop, the handler import,
logging, error shapes) is awslambdaric's, unchanged. Kept outside :mod:`soorma.local.runtime` so a cold start imports
nothing of the emulator.
"""

from __future__ import annotations

import sys

from awslambdaric import bootstrap
from awslambdaric.lambda_config import LambdaConfigProvider
from awslambdaric.lambda_runtime_client import LambdaRuntimeClient


class PrefixedRuntimeClient(LambdaRuntimeClient):
    """awslambdaric's client for an address ``host:port[/prefix]``: HTTP calls made in Python go to ``host:port``
    with ``/prefix`` in front of the path."""

    def __init__(self, address: str, use_thread_for_polling_next: bool = False) -> None:
        host, slash, prefix = address.partition("/")
        super().__init__(host, use_thread_for_polling_next)
        self.path_prefix = f"/{prefix.strip('/')}" if slash and prefix.strip("/") else ""

    def call_rapid(self, http_method, endpoint, expected_http_code, payload=None, headers=None):
        return super().call_rapid(http_method, self.path_prefix + endpoint, expected_http_code, payload, headers)


def main(argv: list[str]) -> None:
    """What ``awslambdaric.__main__.main`` does in its standard (single-concurrency) mode."""
    config = LambdaConfigProvider(argv)
    bootstrap.run(config.handler, PrefixedRuntimeClient(config.api_address, config.use_thread_polling))


if __name__ == "__main__":
    main(sys.argv)
