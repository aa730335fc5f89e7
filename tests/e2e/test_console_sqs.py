"""The console's dead-letter routes on the SQS transport (`soorma local up --transport sqs`): an agent that always
fails (tests/e2e/sdk_apps/console_failing) is dead-lettered by the queue's redrive policy, the console lists it for
its platform tenant only, and replays it to the agent's queue (the goal's replay notice is recorded). The page is the
same on both transports (tests/e2e/test_console.py drives it in a browser on NATS)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from .conftest import free_port, local_stack
from .test_console import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(400)]

APP = Path(__file__).resolve().parent / "sdk_apps" / "console_failing"


@pytest.fixture(scope="module")
def stack():
    env = {"SOORMA_MOTO_PORT": str(free_port()), "SOORMA_LOCAL_SQS_VISIBILITY_TIMEOUT": "2"}
    with local_stack("soorma-console-sqs-", [APP], env=env, up_args=("--transport", "sqs"),
                     unset=("SOORMA_DATABASE_URL", "AWS_ENDPOINT_URL", "SOORMA_EVENT_TRANSPORT")) as stack_:
        yield stack_


def test_dead_letters_are_listed_per_tenant_and_replayed(stack):
    client = stack["client"]
    submitted = client.post("/v1/goals", json={"goal_type": "console.break", "data": {"n": 1}})
    assert submitted.status_code == 202, submitted.text
    goal_id = submitted.json()["goal_id"]

    def dead_letter() -> dict | None:
        listed = client.get("/console/api/dead-letters")
        assert listed.status_code == 200, listed.text
        assert listed.json()["transport"] == "sqs"
        events = {e["event_id"] for e in client.get(f"/v1/goals/{goal_id}/events").json()["events"]}
        return next((d for d in listed.json()["dead_letters"] if d["event_id"] in events), None)

    dead = wait_until(dead_letter, "the dead letter on the SQS transport", timeout_s=120)
    assert dead["agent"] == "console-breaker" and dead["platform_tenant_id"] == "local"

    admin = {"Authorization": f"Bearer {stack['credentials']['admin_api_key']}"}
    tenant = f"pt_{uuid.uuid4().hex[:10]}"
    onboarded = client.post("/v1/tenants", headers=admin, json={"platform_tenant_id": tenant, "name": tenant})
    assert onboarded.status_code == 201, onboarded.text
    other = {"Authorization": f"Bearer {onboarded.json()['admin_api_key']}"}
    assert client.get("/console/api/dead-letters", headers=other).json()["dead_letters"] == []
    stolen = client.post("/console/api/dead-letters/replay", headers=other, json={"event_id": dead["event_id"]})
    assert stolen.status_code == 404

    replayed = client.post("/console/api/dead-letters/replay", json={"event_id": dead["event_id"]})
    assert replayed.status_code == 200, replayed.text
    assert [r["event_id"] for r in replayed.json()["replayed"]] == [dead["event_id"]]
    wait_until(lambda: any(e["type"] == "soorma.event.replayed"
                           for e in client.get(f"/v1/goals/{goal_id}/events").json()["events"]),
               "the replay notice on the goal", timeout_s=120)
