"""LLM-based discovery: a planner finds a worker by capability at runtime, writes the worker's request from the
worker's registered schema, and answers in the shape the client asked for.

``discovery.research.goal {"description", "response_schema"?}`` ─▶ discovery-planner:

1. ``context.registry.discover(["web_research"])`` — agents with a matching capability (no worker name in code);
2. ``context.registry.get_event(<the capability's consumed event>)`` — its registered definition and schema
   (``research_request_v1``, registered by ``soorma local deploy`` from the worker's capability);
3. ``planner.generate_payload(schema, context=description)`` — the LLM writes a conforming request (checked
   against the schema, defaults filled in);
4. ``goal.dispatch(event, payload, response_event="research.worker.completed")`` — a lightweight request with
   the goal's correlation id: no saved task state, no sub-task bookkeeping.

When the worker answers, the planner reads the goal's routing metadata back (``memory.get_goal_metadata``: where
and how to answer) and the client's response schema (the goal's ``response_schema``; the planner's registered
``research_result_v1`` when the client sent none), has the LLM shape the findings into it
(``generate_payload``), and answers the goal.
"""

from __future__ import annotations

import json
import logging
import os

from soorma import EventDefinition, Worker
from soorma.ai.choreography import ChoreographyPlanner
from soorma.ai.llm import llm_configured

log = logging.getLogger("discovery-llm")

#: Working-memory key (in the goal's plan) of the response schema the client asked for.
RESPONSE_SCHEMA_KEY = "response_schema"

RESEARCH_REQUESTED = EventDefinition(
    event_name="research.requested",
    topic="action-requests",
    description="Request structured web research on a topic",
    payload_schema_name="research_request_v1",
    payload_schema={
        "type": "object",
        "properties": {
            "topic": {"type": "string", "description": "Research topic or question"},
            "max_results": {"type": "integer", "minimum": 1, "maximum": 7, "default": 3,
                            "description": "Maximum number of findings"},
            "depth": {"type": "string", "enum": ["shallow", "standard", "deep"], "default": "standard"},
        },
        "required": ["topic"],
        "additionalProperties": False,
    },
)

RESEARCH_WORKER_COMPLETED = EventDefinition(
    event_name="research.worker.completed",
    topic="action-results",
    description="Findings of research-worker (the planner's internal event)",
)

#: The planner's own answer format, used when the client sends no response_schema.
RESEARCH_RESULT = EventDefinition(
    event_name="discovery.research.completed",
    topic="action-results",
    description="A research answer: the topic, a summary and the sources",
    payload_schema_name="research_result_v1",
    payload_schema={
        "type": "object",
        "properties": {
            "topic": {"type": "string"},
            "summary": {"type": "string"},
            "sources": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["topic", "summary", "sources"],
    },
)

GOAL = EventDefinition(
    event_name="discovery.research.goal",
    topic="action-requests",
    description="Research a topic; optional response_schema (a JSON Schema) says what the answer must look like",
    payload_schema={
        "type": "object",
        "properties": {"description": {"type": "string"}, "response_schema": {"type": "object"}},
        "required": ["description"],
    },
)

# --- the planner --------------------------------------------------------------------------------------------------

planner = ChoreographyPlanner(
    "discovery-planner",
    temperature=0.0,
    description="Finds a research worker by capability and writes its request from the worker's schema.",
    events_consumed=[GOAL],
    events_produced=[RESEARCH_RESULT],
    auth_token_provider=lambda: os.environ.get("SOORMA_API_KEY"),  # platform calls only, never the LLM
)


@planner.on_goal("discovery.research.goal")
async def research_goal(goal, context):
    """Discover a worker, generate its payload from the registered schema, dispatch it."""
    description = str(goal.data.get("description") or "").strip()
    if not description:
        await goal.fail('discovery.research.goal needs {"description": "..."}')
        return
    if not llm_configured():
        await goal.fail("no LLM configured: set SOORMA_LLM_BASE_URL (and SOORMA_LLM_API_KEY, SOORMA_LLM_MODEL)")
        return
    agents = await context.registry.discover(requirements=["web_research"], include_schemas=True)
    capability = next((c for a in agents for c in a.capabilities
                       if isinstance(c, dict) and "web_research" in str(c.get("taskName") or c.get("task_name"))),
                      None)
    if capability is None:
        await goal.fail("no deployed agent has the capability web_research")
        return
    consumed = capability.get("consumedEvent") or capability.get("consumed_event") or {}
    event_name = consumed.get("eventName") or consumed.get("event_name")
    definition = await context.registry.get_event(event_name)
    if definition is None or not definition.payload_schema:
        await goal.fail(f"{event_name} has no registered payload schema")
        return
    schema = {"schema_name": definition.payload_schema_name, "json_schema": definition.payload_schema}
    payload = await planner.generate_payload(schema, context=description)
    client_schema = goal.data.get("response_schema")
    if isinstance(client_schema, dict):
        await context.memory.store(RESPONSE_SCHEMA_KEY, client_schema, plan_id=goal.correlation_id)
    await goal.dispatch(event_name, payload, response_event="research.worker.completed")


@planner.on_result("research.worker.completed")
async def research_done(result, context):
    """Shape the findings into the client's response schema and answer the goal (from its stored metadata)."""
    metadata = await context.memory.get_goal_metadata(result.correlation_id)
    if metadata is None:
        log.info("no goal metadata for %s (already answered?)", result.correlation_id)
        return
    answer_to = {"event_type": metadata["response_event"], "correlation_id": metadata["correlation_id"],
                 "topic": metadata.get("response_topic") or "action-results"}
    if not result.success:
        await context.bus.respond(data={"status": "failed", "error": f"research failed: {result.error}"},
                                  **answer_to)
        return
    findings = result.result or {}
    client_schema = await context.memory.retrieve(RESPONSE_SCHEMA_KEY, plan_id=result.correlation_id)
    if isinstance(client_schema, dict):
        schema, owner = {"schema_name": "client response schema", "json_schema": client_schema}, "client"
    else:
        schema, owner = RESEARCH_RESULT, "research_result_v1"
    shaped = await planner.generate_payload(schema, context=json.dumps(findings, indent=1))
    await context.bus.respond(data={"status": "completed", "response_schema": owner, "result": shaped,
                                    "request": findings.get("request")}, **answer_to)


# --- the worker ---------------------------------------------------------------------------------------------------

worker = Worker(
    "research-worker",
    description="Performs structured web research and returns summarised findings",
    capabilities=[{
        "task_name": "web_research",
        "description": "Performs structured research on a topic and returns findings with sources",
        "consumed_event": RESEARCH_REQUESTED,
        "produced_events": [RESEARCH_WORKER_COMPLETED],
    }],
)

TEMPLATES = [
    "Overview of {topic}",
    "Recent developments in {topic}",
    "{topic}: practical applications",
    "Open problems in {topic}",
    "Comparing approaches to {topic}",
    "{topic} in industry",
    "Where {topic} is heading",
]


@worker.on_task("research.requested")
async def research(task, context):
    """Simulated research: ``max_results`` findings about ``topic`` (a search API in real life)."""
    topic = task.data["topic"]
    count = min(int(task.data.get("max_results") or 3), len(TEMPLATES))
    findings = [{"title": TEMPLATES[i].format(topic=topic), "source": f"https://example.com/research/{i + 1}"}
                for i in range(count)]
    await task.complete({"topic": topic, "depth": task.data.get("depth"), "findings": findings,
                         "result_count": len(findings), "request": dict(task.data)})
