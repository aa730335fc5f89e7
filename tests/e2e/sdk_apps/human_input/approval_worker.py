"""Agents that ask a person (tests/e2e/test_human_input.py): each task asks for input and waits without holding a
function; the answers resume it through ``on_input``."""

from soorma import Worker
from soorma.task_context import NO_DEFAULT

worker = Worker("approver", description="Asks a person before it acts")
# A second agent, so that neither subscribes to more event types than moto's SNS accepts in one filter policy on the
# SQS transport (moto over-counts an $or policy's complexity).
profiler = Worker("profiler", description="Asks two questions at once")

APPROVAL = {"type": "object", "properties": {"approved": {"type": "boolean"}, "note": {"type": "string"}},
            "required": ["approved"], "additionalProperties": False}


@worker.on_task("purchase.approve")
async def ask_approval(task, context):
    """One question; ``data.timeout`` (seconds) and ``data.default`` (what a timeout answers) when given."""
    await task.request_input(f"Approve buying {task.data.get('item')}?", schema=APPROVAL,
                             timeout=task.data.get("timeout"), default=task.data.get("default", NO_DEFAULT))


@profiler.on_task("profile.collect")
async def ask_two(task, context):
    """Two questions pending at once, answered independently."""
    await task.request_input("name", schema={"type": "string", "minLength": 1})
    await task.request_input("age", schema={"type": "integer", "minimum": 0})


@worker.on_task("echo.now")
async def echo(task, context):
    await task.complete({"echo": task.data})


@worker.on_input()
@profiler.on_input()
async def answered(task, answer, context):
    answers = task.state.setdefault("answers", {})
    answers[answer.prompt if task.event_type == "profile.collect" else "approval"] = answer.value
    if answer.timed_out:
        task.state["timed_out"] = True
    if task.pending_inputs:
        await task.save()  # wait for the others
        return
    await task.complete({"answers": answers, "timed_out": task.state.get("timed_out", False)})
