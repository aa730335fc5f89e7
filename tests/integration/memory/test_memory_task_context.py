"""Task context through the Lambda handler: upsert, versions (optimistic concurrency), by-subtask lookup."""

from __future__ import annotations

import threading

import pytest

from soorma.functions.shared.service import ensure_event_loop


def _create(api, who, task_id="task-1", **extra):
    body = {
        "task_id": task_id,
        "plan_id": "plan-9",
        "event_type": "research.requested",
        "response_event": "research.completed",
        "data": {"topic": "pgvector"},
        "sub_tasks": ["sub-a", "sub-b"],
        "state": {"step": 1},
        "correlation_id": "corr-1",
        "session_id": "sess-1",
        "goal_id": "goal-1",
        "trace_id": "trace-1",
    }
    body.update(extra)
    return api.call("POST", "/v1/memory/task-context", who, body=body)


def test_create_get_and_upsert_bump_the_version(api, make_identity):
    who = make_identity()
    created = _create(api, who)
    assert created.status == 200, created.body
    record = created.body
    assert record["taskId"] == "task-1" and record["planId"] == "plan-9"
    assert record["eventType"] == "research.requested" and record["responseEvent"] == "research.completed"
    assert record["responseTopic"] == "action-results"
    assert record["subTasks"] == ["sub-a", "sub-b"] and record["state"] == {"step": 1}
    assert record["correlationId"] == "corr-1" and record["sessionId"] == "sess-1"
    assert record["goalId"] == "goal-1" and record["traceId"] == "trace-1"
    assert record["version"] == 1 and record["createdAt"] and record["updatedAt"]

    got = api.call("GET", "/v1/memory/task-context/task-1", who)
    assert got.status == 200 and got.body == record

    again = _create(api, who, state={"step": 2})
    assert again.body["version"] == 2 and again.body["state"] == {"step": 2}
    assert again.body["createdAt"] == record["createdAt"]


def test_camel_case_body_is_accepted(api, make_identity):
    who = make_identity()
    reply = api.call(
        "POST", "/v1/memory/task-context", who,
        body={"taskId": "t-camel", "eventType": "e", "subTasks": ["s1"], "responseTopic": "action-results",
              "correlationId": "c"},
    )
    assert reply.status == 200, reply.body
    assert reply.body["subTasks"] == ["s1"] and reply.body["correlationId"] == "c"
    put = api.call("PUT", "/v1/memory/task-context/t-camel", who, body={"subTasks": ["s2"], "goalId": "g"})
    assert put.body["subTasks"] == ["s2"] and put.body["goalId"] == "g" and put.body["correlationId"] == "c"


def test_update_with_versions(api, make_identity):
    who = make_identity()
    assert _create(api, who).body["version"] == 1

    update = api.call("PUT", "/v1/memory/task-context/task-1", who, body={"state": {"step": 5}, "version": 1})
    assert update.status == 200 and update.body["version"] == 2 and update.body["state"] == {"step": 5}
    assert update.body["subTasks"] == ["sub-a", "sub-b"]  # untouched fields stay

    stale = api.call("PUT", "/v1/memory/task-context/task-1", who, body={"state": {"step": 6}, "version": 1})
    assert stale.status == 409 and "version 2" in stale.body["detail"]
    assert api.call("GET", "/v1/memory/task-context/task-1", who).body["state"] == {"step": 5}

    # without an expected version the write is unconditional (soorma-core's behaviour)
    blind = api.call("PUT", "/v1/memory/task-context/task-1", who, body={"state": {"step": 7}})
    assert blind.status == 200 and blind.body["version"] == 3

    # the upsert honours an expected version too
    stale_upsert = _create(api, who, version=2)
    assert stale_upsert.status == 409
    fresh_upsert = _create(api, who, version=3)
    assert fresh_upsert.status == 200 and fresh_upsert.body["version"] == 4

    missing = api.call("PUT", "/v1/memory/task-context/nope", who, body={"state": {}})
    assert missing.status == 404
    missing_versioned = api.call("PUT", "/v1/memory/task-context/nope", who, body={"state": {}, "version": 1})
    assert missing_versioned.status == 404


WRITERS = 8  # concurrent writers per race
ROUNDS = 4  # base versions raced in test_concurrent_writers_one_wins_per_version


@pytest.fixture
def race_api(api, app_dsn, embedder):
    """The memory app on its own pool of WRITERS connections (the shared test pool has 2), so every writer of a race
    holds a database connection at the same time and the statements really overlap in PostgreSQL."""
    from mangum import Mangum

    from soorma.functions.memory.app import create_app
    from soorma.functions.shared.db import Database

    db = Database(app_dsn, max_size=WRITERS)
    yield type(api)(Mangum(create_app(db=db, embedder=embedder), lifespan="off"))  # conftest's MemoryApi
    db.close()


def _race(count: int, work) -> list:
    """Run ``work(i)`` in ``count`` threads released together by a barrier; returns their results (re-raising the
    first error a thread hit)."""
    barrier = threading.Barrier(count)
    results: list = [None] * count
    errors: list[BaseException] = []

    def run(i: int) -> None:
        ensure_event_loop()
        try:
            results[i] = work(i, barrier)
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads), "a writer hung"
    if errors:
        raise errors[0]
    return results


def test_concurrent_writers_one_wins_per_version(race_api, make_identity):
    """WRITERS instances read the same version and write with it at the same moment, ROUNDS times (the PUT and the
    versioned upsert alternately): in every round exactly one write wins, every other gets 409 naming the new version,
    and the stored state is the winner's."""
    who = make_identity()
    assert _create(race_api, who, state={"by": None}).body["version"] == 1

    def work(i: int, barrier: threading.Barrier) -> list:
        out = []
        for r in range(ROUNDS):
            version = 1 + r
            barrier.wait(60)  # every writer of round r starts together, after all of round r-1 finished
            if r % 2 == 0:
                reply = race_api.call("PUT", "/v1/memory/task-context/task-1", who,
                                      body={"state": {"by": i, "round": r}, "version": version})
            else:
                reply = _create(race_api, who, state={"by": i, "round": r}, version=version)
            out.append((reply.status, reply.body))
            barrier.wait(60)
        return out

    results = _race(WRITERS, work)
    for r in range(ROUNDS):
        replies = [results[i][r] for i in range(WRITERS)]
        winners = [i for i, (status, _) in enumerate(replies) if status == 200]
        assert len(winners) == 1, (r, replies)
        losers = [body for status, body in replies if status != 200]
        assert all(status in (200, 409) for status, _ in replies), replies
        assert all(f"version {r + 2}" in body["detail"] for body in losers), losers
        (winner,) = winners
        assert replies[winner][1]["version"] == r + 2 and replies[winner][1]["state"] == {"by": winner, "round": r}
    final = race_api.call("GET", "/v1/memory/task-context/task-1", who).body
    assert final["version"] == 1 + ROUNDS
    last_winner = next(i for i in range(WRITERS) if results[i][-1][0] == 200)
    assert final["state"] == {"by": last_winner, "round": ROUNDS - 1}


def test_concurrent_read_modify_write_loses_no_update(race_api, make_identity):
    """WRITERS writers, released together, each add 1 to a counter INCREMENTS times with read → PUT(version) → on 409
    read again and retry (how a client must use the version). Every increment lands exactly once: the final count is
    WRITERS * INCREMENTS and the version went up once per successful write."""
    increments = 3
    who = make_identity()
    _create(race_api, who, state={"count": 0, "by": []})

    def work(i: int, barrier: threading.Barrier) -> int:
        conflicts = 0
        barrier.wait(60)
        for n in range(increments):
            for _ in range(200):
                current = race_api.call("GET", "/v1/memory/task-context/task-1", who).body
                state = current["state"]
                reply = race_api.call("PUT", "/v1/memory/task-context/task-1", who, body={
                    "state": {"count": state["count"] + 1, "by": state["by"] + [f"{i}.{n}"]},
                    "version": current["version"]})
                if reply.status == 200:
                    break
                assert reply.status == 409, reply.body
                conflicts += 1
            else:
                raise AssertionError(f"writer {i} gave up after 200 conflicts")
        return conflicts

    conflicts = _race(WRITERS, work)
    final = race_api.call("GET", "/v1/memory/task-context/task-1", who).body
    assert final["state"]["count"] == WRITERS * increments, (final, conflicts)
    assert sorted(final["state"]["by"]) == sorted(f"{i}.{n}" for i in range(WRITERS) for n in range(increments))
    assert final["version"] == 1 + WRITERS * increments


def test_by_subtask_lookup(api, make_identity):
    who = make_identity()
    _create(api, who, task_id="parent-1", sub_tasks=["s-1", "s-2"])
    _create(api, who, task_id="parent-2", sub_tasks=["s-3"])

    found = api.call("GET", "/v1/memory/task-context/by-subtask/s-2", who)
    assert found.status == 200 and found.body["taskId"] == "parent-1" and found.body["correlationId"] == "corr-1"
    assert api.call("GET", "/v1/memory/task-context/by-subtask/s-3", who).body["taskId"] == "parent-2"
    assert api.call("GET", "/v1/memory/task-context/by-subtask/unknown", who).status == 404

    # replacing the sub-task list moves the index with it
    api.call("PUT", "/v1/memory/task-context/parent-1", who, body={"sub_tasks": ["s-2", "s-9"]})
    assert api.call("GET", "/v1/memory/task-context/by-subtask/s-1", who).status == 404
    assert api.call("GET", "/v1/memory/task-context/by-subtask/s-9", who).body["taskId"] == "parent-1"
    # so does an upsert
    _create(api, who, task_id="parent-2", sub_tasks=["s-4"])
    assert api.call("GET", "/v1/memory/task-context/by-subtask/s-3", who).status == 404
    assert api.call("GET", "/v1/memory/task-context/by-subtask/s-4", who).body["taskId"] == "parent-2"

    # deleting the task removes its sub-task entries
    assert api.call("DELETE", "/v1/memory/task-context/parent-1", who).status == 204
    assert api.call("GET", "/v1/memory/task-context/by-subtask/s-2", who).status == 404
    assert api.call("GET", "/v1/memory/task-context/parent-1", who).status == 404
    assert api.call("DELETE", "/v1/memory/task-context/parent-1", who).status == 404


def test_tenant_isolation(api, make_identity):
    owner = make_identity()
    _create(api, owner, task_id="private-task", sub_tasks=["private-sub"])
    intruders = [
        make_identity(platform=owner.platform_tenant_id),
        make_identity(platform=owner.platform_tenant_id, service=owner.service_tenant_id),
        make_identity(service=owner.service_tenant_id, user=owner.service_user_id),
    ]
    for intruder in intruders:
        assert api.call("GET", "/v1/memory/task-context/private-task", intruder).status == 404
        assert api.call("GET", "/v1/memory/task-context/by-subtask/private-sub", intruder).status == 404
        put = api.call("PUT", "/v1/memory/task-context/private-task", intruder, body={"state": {"hacked": True}})
        assert put.status == 404
        assert api.call("DELETE", "/v1/memory/task-context/private-task", intruder).status == 404
        # the intruder's own task with the same ids is separate
        assert _create(api, intruder, task_id="private-task", sub_tasks=["private-sub"]).body["version"] == 1
    record = api.call("GET", "/v1/memory/task-context/private-task", owner).body
    assert record["state"] == {"step": 1} and record["version"] == 1
    assert api.call("GET", "/v1/memory/task-context/by-subtask/private-sub", owner).body["taskId"] == "private-task"


def test_bad_input(api, make_identity):
    who = make_identity()
    path = "/v1/memory/task-context"
    assert api.call("POST", path, who, body={"event_type": "e"}).status == 422  # no task_id
    assert api.call("POST", path, who, body={"task_id": "t"}).status == 422  # no event_type
    assert api.call("POST", path, who, body={"task_id": "t", "event_type": "e", "sub_tasks": "s"}).status == 422
    assert api.call("POST", path, who, body={"task_id": "t", "event_type": "e", "state": []}).status == 422
    assert api.call("POST", path, who, body={"task_id": "t", "event_type": "e", "version": -1}).status == 422
    assert api.call("POST", path, who, raw_body="[").status in (400, 422)
    assert api.call("PUT", f"{path}/t", who, body={"version": "one"}).status == 422
    assert api.call("GET", f"{path}/unknown-task", who).status == 404
