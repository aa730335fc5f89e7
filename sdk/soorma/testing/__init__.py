"""Test agents and functions without deploying them: build the events Lambda would hand them and call the handler.

* :func:`sqs_batch` — the function payload of docs/architecture.md (``{"Records": [...]}``, the record shape the
  bridge and SQS send) from envelopes or raw bodies; message ids ``m0``, ``m1``, ….
* :func:`http_api_event` — an API Gateway HTTP API request (payload format 2.0), with the authorizer's identity at
  ``requestContext.authorizer.lambda``; :func:`authorizer_event` — the authorizer's REQUEST event for it.
* :func:`new_identity` — an :class:`~soorma.identity.Identity` with fresh tenant values.
* :func:`free_port` — a TCP port for a server started a moment later, outside the kernel's ephemeral range.
* :func:`acting_headers`, :func:`grant`, :func:`granted` — delivery grants as the gateway mints them
  (:mod:`soorma.grants`), for tests that act as an agent handling a user's event.

An agent object is its Lambda handler; invoke it with a batch and check which messages it reported failed::

    import httpx

    from soorma import EventEnvelope, PlatformContext, Worker
    from soorma.settings import Settings
    from soorma.testing import sqs_batch

    def platform(request: httpx.Request) -> httpx.Response:  # stands in for the platform's HTTP API
        return httpx.Response(200, json={"success": True})

    context = PlatformContext(settings=Settings(api_url="http://platform.test", api_key="sk_test_x"),
                              transport=httpx.MockTransport(platform))
    worker = Worker("order-worker", context=context)

    @worker.on_task("order.process")
    async def process(task, context):
        await task.complete({"ok": True})

    request = EventEnvelope(type="order.process", topic="action-requests", data={"order": 1},
                            response_event="order.processed")
    assert worker(sqs_batch(request), None) == {"batchItemFailures": []}
    malformed = worker(sqs_batch("{not json"), None)  # reported failed, and terminal: dead-lettered at once
    assert malformed["batchItemFailures"] == [{"itemIdentifier": "m0"}]

An HTTP function (a FastAPI app behind Mangum) is called the same way::

    reply = handler(http_api_event("GET", "/v1/agents", identity=new_identity("agent")), None)
    assert reply["statusCode"] == 200

Importing this package loads the SDK only (no FastAPI, no database driver).
"""

from .events import IDENTITY_HEADERS, authorizer_event, http_api_event, sqs_batch
from .grants import acting_headers, grant, granted
from .identities import new_identity
from .ports import free_port

__all__ = ["IDENTITY_HEADERS", "acting_headers", "authorizer_event", "free_port", "grant", "granted",
           "http_api_event", "new_identity", "sqs_batch"]
