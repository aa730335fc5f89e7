"""Parallel delegation: an order worker fans out to an inventory worker and a payment worker at once, and answers
the order when both have answered.

``soorma local deploy examples/worker-basic`` deploys the three module-level workers as three functions.

Flow of one ``order.process.requested`` ``{"order_id", "items", "total"}``::

    order-processor ── inventory.reserve.requested ──▶ inventory-worker ── inventory.reserve.completed ─┐
                    └─ payment.process.requested ───▶ payment-worker ─── payment.process.completed ───┤
    order-processor ◀─────────────────────────────────────────────────────────────────────────────────┘
                    └─▶ the caller's response_event (for a goal: soorma.goal.result)

The two results can arrive at the same moment in two execution environments. Each restores the saved order,
records its own result and saves with the version it read; the slower save is refused (409), its handler is run
again on the fresh record, and sees both results: the order is answered exactly once, with both.
"""

from __future__ import annotations

from soorma import Worker
from soorma.context import PlatformContext
from soorma.task_context import DelegationSpec, ResultContext, TaskContext

PRICES = {"widget": 2.5, "gadget": 10.0, "gizmo": 7.25}

order_processor = Worker(
    name="order-processor",
    description="Processes orders: reserves the items and charges the payment in parallel",
)
inventory_worker = Worker(name="inventory-worker", description="Reserves stock for an order")
payment_worker = Worker(name="payment-worker", description="Charges the payment of an order")


@order_processor.on_task("order.process.requested")
async def handle_order(task: TaskContext, context: PlatformContext) -> None:
    order_id = task.data.get("order_id")
    items = task.data.get("items") or []
    if not order_id or not items:
        await task.fail('order.process.requested needs {"order_id": ..., "items": [...]}')
        return
    group_id = await task.delegate_parallel([
        DelegationSpec(
            event_type="inventory.reserve.requested",
            data={"order_id": order_id, "items": items},
            response_event="inventory.reserve.completed",
        ),
        DelegationSpec(
            event_type="payment.process.requested",
            data={"order_id": order_id, "amount": task.data.get("total", 0)},
            response_event="payment.process.completed",
        ),
    ])
    # Saved again after delegating: the requests only leave when this handler returns, so no result can arrive
    # before the group id is stored.
    task.state["pending_group"] = group_id
    await task.save()
    await task.report_progress(0.1, "inventory and payment requested")


@inventory_worker.on_task("inventory.reserve.requested")
async def reserve(task: TaskContext, context: PlatformContext) -> None:
    unknown = [item for item in task.data.get("items", []) if item not in PRICES]
    if unknown:
        await task.fail(f"unknown items: {', '.join(unknown)}")
        return
    await task.complete({"reserved": True, "items": task.data["items"]})


@payment_worker.on_task("payment.process.requested")
async def charge(task: TaskContext, context: PlatformContext) -> None:
    amount = task.data.get("amount", 0)
    if not isinstance(amount, (int, float)) or amount <= 0:
        await task.fail(f"cannot charge {amount!r}")
        return
    await task.complete({"charged": True, "amount": round(float(amount), 2)})


@order_processor.on_result("inventory.reserve.completed")
@order_processor.on_result("payment.process.completed")
async def handle_subtask_result(result: ResultContext, context: PlatformContext) -> None:
    task = await result.restore_task()
    task.update_sub_task_result(result.correlation_id, result.data.get("result") if result.success else None,
                                success=result.success, error=result.error)
    aggregated = task.aggregate_parallel_results(task.state.get("pending_group"))
    if aggregated is None:
        await task.save()
        await task.report_progress(0.5, f"{result.event_type} received")
        return
    by_request = {info.event_type: info for info in task.sub_tasks.values()}
    inventory = by_request["inventory.reserve.requested"]
    payment = by_request["payment.process.requested"]
    if inventory.status == "failed" or payment.status == "failed":
        await task.fail("; ".join(i.error or f"{i.event_type} failed" for i in (inventory, payment)
                                  if i.status == "failed"))
        return
    await task.complete({
        "order_id": task.data.get("order_id"),
        "status": "confirmed",
        "inventory": inventory.result,
        "payment": payment.result,
    })


if __name__ == "__main__":  # run one of them as a local process: python agents.py [order|inventory|payment]
    import sys

    {"order": order_processor, "inventory": inventory_worker, "payment": payment_worker}[
        (sys.argv[1:] or ["order"])[0]
    ].run()
