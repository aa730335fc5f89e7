"""An event chain on ``business-facts``: each agent reacts to a fact by announcing the next one. Nobody waits for an
answer; the chain is held together by the metadata every event carries.

``soorma local deploy examples/events-simple`` deploys the three module-level workers as three functions::

    order.place ──▶ storefront ── order.placed ──▶ inventory-tracker ── inventory.reserved ──▶ shipping-notifier
    (a request)     │                                                                          │
                    └─▶ answers the request                                      order.shipped ┘

Metadata: ``trace_id``, ``session_id``, ``goal_id``, ``tenant_id``/``user_id`` and ``parent_event_id`` (= the id of
the event being handled) are copied by the SDK onto every event published inside a handler. The
``correlation_id`` is the caller's to choose, so each agent passes it on explicitly (``correlation_id=
event.correlation_id``): the whole chain shares the correlation id of the order that started it.
``order.shipped`` reports the metadata it received in ``data.metadata``.
"""

from __future__ import annotations

from soorma import Worker
from soorma.context import PlatformContext
from soorma.events import EventEnvelope, EventTopic

storefront = Worker(
    name="storefront",
    description="Takes orders and announces them",
    events_consumed=["order.place"],
    events_produced=["order.placed"],
)
inventory = Worker(
    name="inventory-tracker",
    description="Reserves stock when an order is placed",
    events_consumed=["order.placed"],
    events_produced=["inventory.reserved"],
)
shipping = Worker(
    name="shipping-notifier",
    description="Ships reserved orders and announces the shipment",
    events_consumed=["inventory.reserved"],
    events_produced=["order.shipped"],
)


def metadata(event: EventEnvelope) -> dict:
    """The routing metadata an event arrived with."""
    return {
        "correlation_id": event.correlation_id,
        "session_id": event.session_id,
        "trace_id": event.trace_id,
        "goal_id": event.goal_id,
        "parent_event_id": event.parent_event_id,
    }


@storefront.on_event("order.place", topic=EventTopic.ACTION_REQUESTS)
async def place_order(event: EventEnvelope, context: PlatformContext) -> None:
    """Announce ``order.placed`` and answer the request (when it asked for an answer)."""
    order_id = event.data.get("order_id")
    items = event.data.get("items") or []
    if not order_id or not items:
        if event.response_event:
            await context.bus.respond(event.response_event, {
                "status": "failed", "error": 'order.place needs {"order_id": ..., "items": [...]}'},
                correlation_id=event.correlation_id)
        return
    placed_id = await context.bus.announce(
        "order.placed",
        {"order_id": order_id, "items": items, "customer": event.data.get("customer", "guest")},
        correlation_id=event.correlation_id,
    )
    if event.response_event:
        await context.bus.respond(event.response_event, {"order_id": order_id, "status": "accepted",
                                                         "announced": "order.placed", "event_id": placed_id},
                                  correlation_id=event.correlation_id)


@inventory.on_event("order.placed", topic=EventTopic.BUSINESS_FACTS)
async def reserve_stock(event: EventEnvelope, context: PlatformContext) -> None:
    """React to ``order.placed``: announce ``inventory.reserved``."""
    await context.bus.announce(
        "inventory.reserved",
        {"order_id": event.data.get("order_id"), "items": event.data.get("items", []), "reserved": True},
        correlation_id=event.correlation_id,
    )


@shipping.on_event("inventory.reserved", topic=EventTopic.BUSINESS_FACTS)
async def ship(event: EventEnvelope, context: PlatformContext) -> None:
    """React to ``inventory.reserved``: announce ``order.shipped`` with the metadata that reached this agent."""
    order_id = event.data.get("order_id")
    await context.bus.announce(
        "order.shipped",
        {"order_id": order_id, "tracking": f"TRK-{order_id}", "metadata": metadata(event)},
        correlation_id=event.correlation_id,
    )


if __name__ == "__main__":  # run one as a local process: python agents.py [storefront|inventory|shipping]
    import sys

    {"storefront": storefront, "inventory": inventory, "shipping": shipping}[(sys.argv[1:] or ["storefront"])[0]].run()
