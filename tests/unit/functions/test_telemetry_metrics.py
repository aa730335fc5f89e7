"""EMF metrics of the platform's delivery paths (docs/observability.md): the SQS transport's dead letters are counted
as ``DeadLettered`` per agent, the name the NATS bridge uses, so one CloudWatch metric covers both transports."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout

from soorma.functions.tracker.dead_letters import emit_dead_letter_metrics


def test_sqs_dead_letters_are_one_emf_record_per_agent():
    out = io.StringIO()
    with redirect_stdout(out):
        emit_dead_letter_metrics({"calculator": 2, "planner": 1})
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert sorted((r["agent"], r["DeadLettered"]) for r in records) == [("calculator", [2.0]), ("planner", [1.0])]
    for record in records:
        directive = record["_aws"]["CloudWatchMetrics"][0]
        assert directive["Namespace"] == "Soorma" and directive["Dimensions"] == [["agent"]]
        assert directive["Metrics"] == [{"Name": "DeadLettered", "Unit": "Count"}]
