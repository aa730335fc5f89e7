"""``ChoreographyPlanner.generate_payload`` (reference §1.8) against a local fake LLM, and the event definitions an
agent hands to the deployer from its capabilities (soorma-core registers them at startup)."""

from __future__ import annotations

import asyncio
import json

import pytest

from soorma import EventDefinition, Worker
from soorma.ai.choreography import ChoreographyPlanner
from soorma.testing.llm import FakeLLMServer

SCHEMA = {
    "type": "object",
    "properties": {
        "topic": {"type": "string", "description": "Research topic"},
        "max_results": {"type": "integer", "default": 5},
        "depth": {"type": "string", "enum": ["shallow", "standard", "deep"], "default": "standard"},
    },
    "required": ["topic"],
    "additionalProperties": False,
}


def planner(base_url: str) -> ChoreographyPlanner:
    return ChoreographyPlanner("payload-planner", reasoning_model="fake", api_base=base_url, api_key="llm-key",
                               auth_token="sk_platform_secret")


def test_generate_payload_from_a_registered_schema_fills_defaults_and_sends_no_credentials():
    with FakeLLMServer(['{"topic": "quantum computing", "depth": "deep"}']) as llm:
        payload = asyncio.run(planner(llm.base_url).generate_payload(
            {"schema_name": "research_request_v1", "json_schema": SCHEMA}, "Latest advances in quantum computing"))
        assert payload == {"topic": "quantum computing", "depth": "deep", "max_results": 5}
        [request] = llm.requests
        prompt = "\n".join(llm.prompts())
        assert "research_request_v1" in prompt and '"max_results"' in prompt
        assert "Latest advances in quantum computing" in prompt
        assert request["body"]["response_format"] == {"type": "json_object"}
        assert "sk_platform_secret" not in json.dumps(request)
        assert request["headers"]["Authorization"] == "Bearer llm-key"


def test_generate_payload_accepts_an_event_definition_and_retries_a_nonconforming_answer():
    definition = EventDefinition(event_name="research.requested", payload_schema=SCHEMA)
    with FakeLLMServer(['{"subject": "x"}', '{"topic": "x", "max_results": 2}']) as llm:
        payload = asyncio.run(planner(llm.base_url).generate_payload(definition, "x"))
        assert payload == {"topic": "x", "max_results": 2, "depth": "standard"}
        assert len(llm.requests) == 2
        assert "does not conform" in llm.prompts()[-1] and "topic" in llm.prompts()[-1]


def test_generate_payload_gives_up_after_two_nonconforming_answers():
    with FakeLLMServer(['{"topic": 7}']) as llm:
        with pytest.raises(ValueError, match="no payload conforming to the schema"):
            asyncio.run(planner(llm.base_url).generate_payload(SCHEMA, "x"))
        assert len(llm.requests) == 2
    with pytest.raises(ValueError, match="no JSON Schema"):
        asyncio.run(planner("http://127.0.0.1:9/v1").generate_payload({"nothing": 1}, "x"))


def test_capability_event_definitions_are_registrable_and_serializable():
    requested = EventDefinition(event_name="research.requested", description="Request research",
                                payload_schema_name="research_request_v1", payload_schema=SCHEMA)
    worker = Worker("research-worker", capabilities=[{
        "task_name": "web_research", "description": "Web research", "consumed_event": requested,
        "produced_events": [EventDefinition(event_name="research.worker.completed", topic="action-results",
                                            description="Findings")],
    }])

    @worker.on_task("research.requested")
    async def research(task, context):
        await task.complete({})

    names = {d["event_name"]: d for d in worker.event_definitions()}
    assert set(names) == {"research.requested", "research.worker.completed"}
    assert names["research.requested"]["payload_schema"] == SCHEMA
    body = worker.definition()
    json.dumps(body)  # EventDefinition objects inside capabilities serialize
    assert [c["task_name"] for c in body["capabilities"]] == ["web_research"]  # on_task added no duplicate
    assert body["capabilities"][0]["consumed_event"]["payload_schema_name"] == "research_request_v1"
