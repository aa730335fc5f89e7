"""Connections at scale (issue 16, item 4), on a real local stack: the platform's HTTP functions are driven past
their configured concurrency (:data:`soorma.functions.shared.capacity.RESERVED_CONCURRENCY`, which the local Lambda
applies as it does in the cloud) while the database's connections are sampled. The gateway's long-polls, each
holding its execution environment and two connections for seconds, bring it to its full concurrency; memory,
registry and tracker requests run at once. No request fails, the database never refuses a connection, and the
connections in use never exceed what the capacity table plans for (:func:`connections_needed`), which the embedded
PostgreSQL is sized to, as Aurora is at its maximum capacity (tests/infra/test_connections.py)."""

from __future__ import annotations

import concurrent.futures
import json
import threading
import time
from typing import Any

import httpx
import psycopg
import pytest

from soorma.functions.shared.capacity import RESERVED_CONCURRENCY, connections_needed

from .conftest import local_stack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

LONG_POLL_S = 4
ROUNDS = 3


@pytest.fixture(scope="module")
def stack():
    # rate limits out of the way: this test is about connections, not about the buckets in front of them
    env = {"SOORMA_RATE_KEY_RPS": "10000", "SOORMA_RATE_TENANT_RPS": "10000"}
    with local_stack("soorma-e2e-connections-", env=env) as stack_:
        yield stack_


def _owner_dsn(stack: dict[str, Any]) -> str:
    # state.json names the owner URL without its password; the embedded server trusts its owner-only socket
    return json.loads((stack["home"] / "state.json").read_text())["database_url"].replace(":***@", "@")


class ConnectionSampler(threading.Thread):
    """Counts the database's client connections every 50 ms until stopped; ``peak`` is the most seen."""

    def __init__(self, dsn: str) -> None:
        super().__init__(daemon=True)
        self.dsn, self.peak, self.samples, self.max_connections = dsn, 0, 0, 0
        self._stop_event = threading.Event()
        self.ready = threading.Event()

    def run(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            self.max_connections = int(conn.execute("show max_connections").fetchone()[0])
            self.ready.set()
            while not self._stop_event.is_set():
                row = conn.execute("select count(*) from pg_stat_activity where backend_type = 'client backend'"
                                   " and usename = 'soorma_app'").fetchone()
                self.peak = max(self.peak, int(row[0]))
                self.samples += 1
                self._stop_event.wait(0.05)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=10)


def test_the_functions_at_their_configured_concurrency_never_exhaust_the_database(stack):
    client: httpx.Client = stack["client"]
    # a goal no agent handles stays running, so every long-poll on it waits its whole time in the gateway
    created = client.post("/v1/goals", json={"goal_type": "nobody.handles.this", "data": {}})
    assert created.status_code == 202, created.text
    goal_id = created.json()["goal_id"]
    sampler = ConnectionSampler(_owner_dsn(stack))
    sampler.start()
    assert sampler.ready.wait(30)
    assert sampler.max_connections >= connections_needed()  # the local database is sized like the cloud's

    requests: list[tuple[str, str]] = []
    for _ in range(ROUNDS):
        requests += [("GET", f"/v1/goals/{goal_id}?wait={LONG_POLL_S}")] * (RESERVED_CONCURRENCY["gateway"] + 2)
        requests += [("GET", "/v1/memory/working/load-plan/key")] * RESERVED_CONCURRENCY["memory"]
        requests += [("GET", "/v1/agents")] * RESERVED_CONCURRENCY["registry"]
        requests += [("GET", f"/v1/tracker/goals/{goal_id}/events")] * RESERVED_CONCURRENCY["tracker"]

    def call(request: tuple[str, str]) -> tuple[str, int, str]:
        method, path = request
        reply = client.request(method, path, timeout=60)
        return path, reply.status_code, reply.text[:300]

    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(len(requests) // ROUNDS) as pool:
        results = list(pool.map(call, requests))
    elapsed = time.monotonic() - started
    sampler.stop()

    failures = [r for r in results if r[1] >= 500 or r[1] in (401, 403, 429)]
    assert not failures, failures[:5]
    # the memory read of a key never written is a 404 from the function, which still queried the database
    assert {status for _, status, _ in results} <= {200, 404}, sorted({s for _, s, _ in results})
    functions = httpx.get(stack["credentials"]["api_url"] + "/_local/status", headers=_control_headers(stack),
                          timeout=30).json()["functions"]
    gateway = functions["soorma-gateway"]
    # the gateway ran at its configured concurrency: the long-polls brought up every environment it may have
    assert gateway["environments"] == RESERVED_CONCURRENCY["gateway"], gateway
    assert sampler.samples > 10
    print(f"peak {sampler.peak} soorma_app connections (plan {connections_needed()}, max_connections "
          f"{sampler.max_connections}) over {len(results)} requests in {elapsed:.1f} s; environments: "
          f"{ {name: f['environments'] for name, f in functions.items()} }")
    assert sampler.peak <= connections_needed()


def _control_headers(stack: dict[str, Any]) -> dict[str, str]:
    secrets = json.loads((stack["home"] / "secrets.json").read_text())
    return {"X-Soorma-Control-Token": secrets["control_token"]}
