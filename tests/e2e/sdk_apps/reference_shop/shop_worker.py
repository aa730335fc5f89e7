"""A worker written against soorma-core's SDK, the way its documentation and examples write one (one module, one
Worker handling the order and both sub-tasks, a ``__main__`` that calls ``worker.run()``). The e2e test deploys this
file with ``soorma local deploy`` as it is: nothing here knows about Lambda."""

from soorma import Worker
from soorma.context import PlatformContext
from soorma.task_context import DelegationSpec, ResultContext, TaskContext

worker = Worker(
    name="legacy-shop",
    description="Order processing in soorma-core style",
)


@worker.on_task("shop.order.requested")
async def handle_order(task: TaskContext, context: PlatformContext) -> None:
    group_id = await task.delegate_parallel([
        DelegationSpec(
            event_type="shop.stock.reserve",
            data={"order_id": task.data.get("order_id"), "items": task.data.get("items", [])},
            response_event="shop.stock.reserved",
        ),
        DelegationSpec(
            event_type="shop.payment.charge",
            data={"order_id": task.data.get("order_id"), "amount": task.data.get("total", 0)},
            response_event="shop.payment.charged",
        ),
    ])
    task.state["pending_group"] = group_id
    await task.save()


@worker.on_task("shop.stock.reserve")
async def handle_stock(task: TaskContext, context: PlatformContext) -> None:
    await task.complete({"reserved": True, "items": task.data.get("items", [])})


@worker.on_task("shop.payment.charge")
async def handle_payment(task: TaskContext, context: PlatformContext) -> None:
    await task.complete({"charged": True, "amount": task.data.get("amount", 0)})


@worker.on_result("shop.stock.reserved")
@worker.on_result("shop.payment.charged")
async def handle_subtask_result(result: ResultContext, context: PlatformContext) -> None:
    task = await result.restore_task()
    task.update_sub_task_result(result.correlation_id, result.data.get("result", result.data))
    group_id = task.state.get("pending_group")
    aggregated = task.aggregate_parallel_results(group_id) if group_id else None
    if not aggregated:
        await task.save()
        return
    stock = next((i.result for i in task.sub_tasks.values() if i.event_type == "shop.stock.reserve"), None)
    payment = next((i.result for i in task.sub_tasks.values() if i.event_type == "shop.payment.charge"), None)
    await task.complete({"order_id": task.data.get("order_id"), "inventory": stock, "payment": payment})


@worker.on_startup
async def startup() -> None:
    print("legacy-shop worker started")


@worker.on_shutdown
async def shutdown() -> None:
    print("legacy-shop worker stopping")


if __name__ == "__main__":
    worker.run()
