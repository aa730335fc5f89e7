"""``soorma init NAME --type worker|tool|planner [--dir PATH] [--description TEXT]``: scaffold a deployable agent
project (``--description``/``-d``: the agent's description, as soorma-core's ``soorma init`` takes it).

``NAME/`` gets:

* ``agent.py`` — the module-level agent object (a :class:`~soorma.Worker`, :class:`~soorma.Tool` or
  :class:`~soorma.Planner`) with one handler, and ``if __name__ == "__main__": agent.run()`` for a local process;
* ``soorma.toml`` — the app name and module that ``soorma local deploy NAME`` deploys;
* ``tests/test_agent.py`` — a test that invokes the agent object as its Lambda handler with
  :func:`soorma.testing.sqs_batch` against a fake platform (``httpx.MockTransport``): plain ``pytest``, no stack;
* ``README.md``, ``pyproject.toml`` (pytest finds ``agent.py`` through ``pythonpath``) and ``.gitignore``.

Errors (exit code 2, message on stderr): a name that is not ``[a-z][a-z0-9-]*`` (it becomes the agent name and
part of event types and function names), an unknown ``--type``, and a target folder that exists and is not empty
(nothing is overwritten).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from string import Template
from typing import Annotated

import typer

from soorma.cli._output import EXIT_RUNTIME, EXIT_USAGE, fail
from soorma.cli.choices import AgentType

NAME_PATTERN = re.compile(r"[a-z][a-z0-9-]*")
#: Longest accepted name: function names are ``<app>-<agent>`` (both NAME) and Lambda allows 64 characters.
MAX_NAME_LENGTH = 31
TYPES = tuple(t.value for t in AgentType)


class InitError(ValueError):
    """The project cannot be created; the message says why."""


def check_name(name: str) -> str:
    """``name`` if it is a valid project/agent name, else :class:`InitError` saying what is accepted."""
    if not NAME_PATTERN.fullmatch(name or ""):
        raise InitError(
            f"invalid name {name!r}: use lower-case letters, digits and hyphens, starting with a letter "
            "(pattern [a-z][a-z0-9-]*), e.g. order-checker"
        )
    if name.endswith("-") or "--" in name:
        raise InitError(f"invalid name {name!r}: no trailing or doubled hyphens")
    if len(name) > MAX_NAME_LENGTH:
        raise InitError(f"invalid name {name!r}: at most {MAX_NAME_LENGTH} characters")
    return name


def check_type(agent_type: str) -> str:
    """``agent_type`` if it is one of :data:`TYPES`, else :class:`InitError`."""
    if agent_type not in TYPES:
        raise InitError(f"unknown type {agent_type!r}: choose one of {', '.join(TYPES)}")
    return agent_type


# --- templates ---------------------------------------------------------------------------------------------------
# ``$name`` is the project/agent name, ``$title`` a readable form of it, ``$description`` the agent's description as
# a Python string literal, ``$event`` the event the agent handles,
# ``$response`` the event the test asks for as the answer.

_WORKER = '''\
"""$name: a Soorma worker. It handles `$event` action requests as tasks and answers the caller.

`soorma local deploy .` (from this folder) deploys the module-level `worker` as one function; every
`$event` request then reaches `handle`, which answers the request's `response_event` with
`{"task_id", "action_id", "status": "completed", "result": {...}}` (or `"status": "failed"`).
"""

from __future__ import annotations

from soorma import Worker
from soorma.context import PlatformContext
from soorma.task_context import TaskContext

EVENT = "$event"

worker = Worker(name="$name", description=$description)


@worker.on_task(EVENT)
async def handle(task: TaskContext, context: PlatformContext) -> None:
    """Answer `{"name": ...}` with a greeting; a request without a name gets a failed result."""
    name = task.data.get("name")
    if not isinstance(name, str) or not name:
        await task.fail('$event needs {"name": "..."}')
        return
    await task.complete({"message": f"Hello, {name}!"})


if __name__ == "__main__":  # a local process against `soorma local` (breakpoints welcome)
    worker.run()
'''

_TOOL = '''\
"""$name: a Soorma tool. It answers `$event` requests at once.

`soorma local deploy .` (from this folder) deploys the module-level `tool` as one function. `handle` returns a
dict; the SDK checks it against `RESULT_SCHEMA` and answers the caller's `response_event` (or `$name.result`)
with `{"request_id", "success": true, "result": {...}}`. A handler that raises is answered with
`{"request_id", "success": false, "error": "..."}`: a failed result, not a retry.
"""

from __future__ import annotations

from soorma import Tool
from soorma.agents.tool import InvocationContext
from soorma.context import PlatformContext

EVENT = "$event"

RESULT_SCHEMA = {
    "type": "object",
    "properties": {"text": {"type": "string"}, "words": {"type": "integer"}, "upper": {"type": "string"}},
    "required": ["text", "words", "upper"],
}

tool = Tool(name="$name", description=$description, default_response_event="$name.result")


@tool.on_invoke(EVENT, response_schema=RESULT_SCHEMA)
async def handle(request: InvocationContext, context: PlatformContext) -> dict:
    """Count the words of `{"text": ...}`."""
    text = request.data.get("text")
    if not isinstance(text, str):
        raise ValueError('$event needs {"text": "..."}')
    return {"text": text, "words": len(text.split()), "upper": text.upper()}


if __name__ == "__main__":  # a local process against `soorma local` (breakpoints welcome)
    tool.run()
'''

_PLANNER = '''\
"""$name: a Soorma planner. It receives `$event` goals and answers them with a plan.

`soorma local deploy .` (from this folder) deploys the module-level `planner` as one function; a goal
(`soorma goal submit $event --data '{"topic": "..."}'`) reaches `handle`, which answers the goal with
`{"task_id", "status": "completed", "result": {"topic", "steps"}}`.

To hand the steps to workers instead, use `await goal.delegate(event_type, data, response_event)` here and answer
from `@planner.on_result(response_event)` (`goal = await result.restore_task(); await goal.complete(...)`), or drive a
state machine with `PlanContext` (see examples/planner-basic).
"""

from __future__ import annotations

from soorma import Planner
from soorma.agents.planner import GoalContext
from soorma.context import PlatformContext

EVENT = "$event"

planner = Planner(name="$name", description=$description)


@planner.on_goal(EVENT)
async def handle(goal: GoalContext, context: PlatformContext) -> None:
    """Answer `{"topic": ...}` with the steps of a plan; a goal without a topic fails."""
    topic = goal.data.get("topic")
    if not isinstance(topic, str) or not topic:
        await goal.fail('$event needs {"topic": "..."}')
        return
    steps = [f"research {topic}", f"outline {topic}", f"write about {topic}"]
    await goal.complete({"topic": topic, "steps": steps})


if __name__ == "__main__":  # a local process against `soorma local` (breakpoints welcome)
    planner.run()
'''

_TEST_COMMON = '''\
"""Tests of `agent.py` without a running stack: the agent object is its own Lambda handler, so the test hands it
an SQS-shaped batch (`soorma.testing.sqs_batch`) and checks what it published on a fake platform."""

from __future__ import annotations

import json

import httpx
import pytest

from soorma import EventEnvelope, PlatformContext
from soorma.settings import Settings
from soorma.testing import sqs_batch

import agent as module


@pytest.fixture()
def published() -> list[dict]:
    """The events the agent publishes; every other platform call is answered with an empty success."""
    events: list[dict] = []

    def platform(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/events/publish":
            event = json.loads(request.content)["event"]
            events.append(event)
            return httpx.Response(200, json={"success": True, "event_id": event["id"]})
        return httpx.Response(200, json={"success": True})

    module.$var.context = PlatformContext(
        settings=Settings(api_url="http://platform.test", api_key="sk_test_key"),
        transport=httpx.MockTransport(platform),
    )
    return events


def request(data: dict) -> EventEnvelope:
    """An action request as a caller (or the gateway, for a goal) publishes it."""
    return EventEnvelope(type=module.EVENT, topic="action-requests", data=data, correlation_id="corr-1",
                         response_event="$response", response_topic="action-results")


def answer(published: list[dict]) -> dict:
    [event] = [e for e in published if e["type"] == "$response"]
    assert event["topic"] == "action-results" and event["correlation_id"] == "corr-1"
    return event["data"]


def test_the_agent_subscribes_to_its_event():
    assert ("action-requests", module.EVENT) in module.$var.subscriptions()

'''

_TEST_WORKER = '''\
def test_it_answers_the_request(published):
    assert module.worker(sqs_batch(request({"name": "Ada"})), None) == {"batchItemFailures": []}
    data = answer(published)
    assert data["status"] == "completed"
    assert data["result"] == {"message": "Hello, Ada!"}


def test_a_request_without_a_name_gets_a_failed_result(published):
    assert module.worker(sqs_batch(request({})), None) == {"batchItemFailures": []}
    data = answer(published)
    assert data["status"] == "failed" and "needs" in data["error"]


def test_a_malformed_message_is_reported_failed(published):
    reply = module.worker(sqs_batch("{not json"), None)
    assert reply["batchItemFailures"] == [{"itemIdentifier": "m0"}]
    assert published == []
'''

_TEST_TOOL = '''\
def test_it_answers_the_request(published):
    assert module.tool(sqs_batch(request({"text": "hello event world"})), None) == {"batchItemFailures": []}
    data = answer(published)
    assert data["success"] is True
    assert data["result"] == {"text": "hello event world", "words": 3, "upper": "HELLO EVENT WORLD"}


def test_bad_input_is_a_failed_result_not_a_retry(published):
    assert module.tool(sqs_batch(request({"text": 42})), None) == {"batchItemFailures": []}
    data = answer(published)
    assert data["success"] is False and "needs" in data["error"]


def test_without_a_response_event_it_answers_the_default(published):
    plain = EventEnvelope(type=module.EVENT, topic="action-requests", data={"text": "a b"}, correlation_id="c-2")
    assert module.tool(sqs_batch(plain), None) == {"batchItemFailures": []}
    [event] = published
    assert event["type"] == "$name.result" and event["correlation_id"] == "c-2"
    assert event["data"]["result"]["words"] == 2
'''

_TEST_PLANNER = '''\
def test_it_answers_the_goal_with_a_plan(published):
    assert module.planner(sqs_batch(request({"topic": "agents"})), None) == {"batchItemFailures": []}
    data = answer(published)
    assert data["status"] == "completed"
    assert data["result"] == {"topic": "agents",
                              "steps": ["research agents", "outline agents", "write about agents"]}


def test_a_goal_without_a_topic_fails(published):
    assert module.planner(sqs_batch(request({})), None) == {"batchItemFailures": []}
    data = answer(published)
    assert data["status"] == "failed" and "needs" in data["error"]
'''

_README = '''\
# $name

A Soorma **$type** created by `soorma init $name --type $type`. It handles `$event`$handles.

| file | what it is |
| --- | --- |
| `agent.py` | the module-level `$var` object and its handler (`$handler`) |
| `soorma.toml` | the app name and module `soorma local deploy` deploys |
| `tests/test_agent.py` | tests that invoke the agent as its Lambda handler, without a running stack |

## Test

```sh
pip install soorma pytest      # or use the environment soorma is installed in
pytest                         # from this folder: no stack, no network
```

The agent object is itself the Lambda handler: the tests hand it an SQS-shaped batch built with
`soorma.testing.sqs_batch(...)` and read what it published from a fake platform (`httpx.MockTransport`).

## Deploy and run on the local stack

```sh
soorma local up                 # the whole platform on this machine (once)
soorma local deploy $dir       # from the folder that holds $dir/
soorma goal submit $event --data '$example' --wait
# → {"status": "completed", "result": $result, ...}
soorma local logs $name-$name --follow
```

A goal (`POST /v1/goals`) is published as an action request whose `response_event` is `soorma.goal.result` and
whose `correlation_id` is the goal id; the agent answers exactly that, and the goal completes.
`soorma local deploy $dir --watch` redeploys on every saved change.

To debug with breakpoints, run it as a local process instead (it consumes its events from the local stack's NATS):

```sh
python agent.py
```

## Deploy to AWS

```sh
soorma deploy $dir             # cdk deploy of the platform with this agent as a Lambda function
```
'''

_DETAILS = {
    "worker": {
        "var": "worker", "description": "greets whoever is named in the request",
        "event": "{name}.requested", "handler": "@worker.on_task",
        "handles": " as a task and answers the caller with a greeting",
        "example": '{{"name": "Ada"}}',
        "result": '{{"task_id": "…", "status": "completed", "result": {{"message": "Hello, Ada!"}}}}',
        "code": _WORKER, "test": _TEST_WORKER,
    },
    "tool": {
        "var": "tool", "description": "counts the words of a text",
        "event": "{name}.invoke", "handler": "@tool.on_invoke",
        "handles": " and answers at once with the word count of a text",
        "example": '{{"text": "hello event world"}}',
        "result": '{{"request_id": "…", "success": true, "result": {{"text": "hello event world", "words": 3, …}}}}',
        "code": _TOOL, "test": _TEST_TOOL,
    },
    "planner": {
        "var": "planner", "description": "plans how to write about a topic",
        "event": "{name}.goal", "handler": "@planner.on_goal",
        "handles": " goals and answers them with a plan",
        "example": '{{"topic": "agents"}}',
        "result": '{{"task_id": "…", "status": "completed", "result": {{"topic": "agents", "steps": […]}}}}',
        "code": _PLANNER, "test": _TEST_PLANNER,
    },
}


def render(name: str, agent_type: str, description: str | None = None) -> dict[str, str]:
    """The project's files, ``{relative path: text}``, for agent ``name`` of ``agent_type``. ``description``: the
    agent's description (its ``description=``, the registry's, and the pyproject's; soorma-core's ``--description``),
    default one saying what the scaffolded handler does."""
    check_name(name)
    check_type(agent_type)
    details = _DETAILS[agent_type]
    title = name.replace("-", " ").capitalize()
    described = description if description is not None else f"{title}: {details['description']}"
    values = {
        "name": name,
        "title": title,
        # JSON string syntax is also a valid Python and TOML string literal: quotes, backslashes and control
        # characters in a user's description stay inside the string
        "description": json.dumps(described, ensure_ascii=False),
        "type": agent_type,
        "var": details["var"],
        "event": details["event"].format(name=name),
        "response": f"{name}.done",
        "handler": details["handler"],
        "handles": details["handles"],
        "example": details["example"].format(),
        "result": details["result"].format(),
        "dir": name,
    }

    def fill(text: str) -> str:
        return Template(text).substitute(values)

    return {
        "agent.py": fill(details["code"]),
        "tests/test_agent.py": fill(_TEST_COMMON) + fill(details["test"]),
        "README.md": fill(_README),
        "soorma.toml": f'[app]\nname = "{name}"\nmodules = ["agent"]\n',
        "pyproject.toml": (
            f'[project]\nname = "{name}"\nversion = "0.1.0"\ndescription = {values["description"]}\n'
            'requires-python = ">=3.11"\ndependencies = ["soorma"]\n\n'
            '[tool.pytest.ini_options]\npythonpath = ["."]\ntestpaths = ["tests"]\n'
        ),
        ".gitignore": "__pycache__/\n*.pyc\n.pytest_cache/\n.soorma/\n.venv/\n",
    }


def scaffold(name: str, agent_type: str = "worker", parent: Path | str = ".", description: str | None = None) -> Path:
    """Create the project ``parent/name/`` and return its path. Raises :class:`InitError` for a bad name or type,
    or when ``parent/name`` exists and is not an empty folder (nothing is written then)."""
    check_name(name)
    check_type(agent_type)
    parent = Path(parent)
    target = parent / name
    if target.exists():
        if not target.is_dir():
            raise InitError(f"{target} exists and is not a folder; choose another name or --dir")
        if any(target.iterdir()):
            raise InitError(f"{target} already exists and is not empty; nothing was written "
                            "(choose another name or --dir, or remove the folder)")
    if parent.exists() and not parent.is_dir():
        raise InitError(f"--dir {parent} is not a folder")
    files = render(name, agent_type, description)
    for relative, text in files.items():
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return target


def init(
    name: Annotated[str, typer.Argument(help="project and agent name: lower-case letters, digits, hyphens")],
    agent_type: Annotated[AgentType, typer.Option(
        "--type", "-t", case_sensitive=False, help="the kind of agent")] = AgentType.worker,
    directory: Annotated[Path | None, typer.Option(
        "--dir", "--output", "-o", help="create NAME/ inside this folder (default: the current folder)")] = None,
    description: Annotated[str | None, typer.Option(
        "--description", "-d", help="the agent's description (default: what the scaffolded handler does)")] = None,
) -> None:
    """Create NAME/: a deployable agent (agent.py), its README, soorma.toml and a passing test."""
    try:
        target = scaffold(name, agent_type.value, directory or Path("."), description)
    except InitError as exc:
        fail(f"error: {exc}", code=EXIT_USAGE)
    except OSError as exc:
        fail(f"error: cannot create the project: {exc}", code=EXIT_RUNTIME)
    typer.secho(f"created {agent_type.value} project {target}/", fg="green")
    for relative in ("agent.py", "tests/test_agent.py", "README.md", "soorma.toml", "pyproject.toml"):
        typer.echo(f"  {target / relative}")
    typer.echo(f"next: (cd {target} && pytest) && soorma local deploy {target}")


__all__ = [
    "MAX_NAME_LENGTH",
    "NAME_PATTERN",
    "TYPES",
    "InitError",
    "check_name",
    "check_type",
    "init",
    "render",
    "scaffold",
]
