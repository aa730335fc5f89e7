"""Issue 12, finding 1 — authorizer cache poisoning (cloud and local).

The HTTP API caches the authorizer's answer keyed on ``Authorization`` alone. The authorizer used to fall back to
``X-API-Key`` when ``Authorization`` was present but not ``Bearer``: a request with ``Authorization: Basic …`` plus a
victim's ``X-API-Key`` stored the victim's identity under that ``Authorization`` value, and anyone sending the same
``Authorization`` alone was the victim for the cache's lifetime.

The attack is performed at the real authorizer function (the cloud path: API Gateway caches whatever it answers) and
through the local API Gateway with its cache on, in front of the real authorizer and gateway functions; the
legitimate uses (``Bearer``, ``X-API-Key`` alone with the cache off) still work next to it.
"""

from __future__ import annotations

import secrets

from soorma.functions.gateway import authorizer
from soorma.testing import authorizer_event, http_api_event


def decide(sec_db, headers: dict[str, str]) -> dict:
    """The real authorizer's answer for a request with ``headers`` (its settings from the environment)."""
    return authorizer.authorize(authorizer_event(http_api_event("GET", "/v1/goals", headers=headers)), sec_db)


def test_the_authorizer_reads_only_the_credential_its_cache_is_keyed_on(api, platform_admin, sx, sec_db):
    victim = sx.onboard(api, platform_admin, users=("victim",))
    attacker = sx.onboard(api, platform_admin, users=("attacker",))
    victim_key, attacker_key = victim.keys["victim"], attacker.keys["attacker"]

    # the attack: a non-Bearer Authorization (the cache key) with the victim's key in X-API-Key
    for auth in ("Basic YXR0YWNrZXI6eA==", "Token whatever", "Bearer", "bearer   ", ""):
        assert decide(sec_db, {"authorization": auth, "x-api-key": victim_key}) == {"isAuthorized": False}, auth
    # two credentials are refused even when both are well-formed (which one would the cache be keyed on?)
    assert decide(sec_db, {"authorization": f"Bearer {attacker_key}", "x-api-key": victim_key}) == \
        {"isAuthorized": False}
    assert decide(sec_db, {"authorization": f"Bearer {victim_key}", "x-api-key": victim_key}) == \
        {"isAuthorized": False}

    # legitimate: Bearer (any casing of the scheme), and X-API-Key alone (reachable only with the cache off)
    for headers in ({"authorization": f"Bearer {victim_key}"}, {"authorization": f"bearer {victim_key}"},
                    {"x-api-key": victim_key}):
        answer = decide(sec_db, headers)
        assert answer["isAuthorized"] is True, headers
        assert (answer["context"]["platform_tenant_id"], answer["context"]["service_user_id"]) == (victim.id,
                                                                                                   "victim")


def test_the_local_api_gateway_cache_cannot_be_poisoned(api, platform_admin, sx, invoker):
    victim = sx.onboard(api, platform_admin, users=("victim",))
    victim_key = victim.keys["victim"]
    goal = api.post("/v1/goals", headers=sx.bearer(victim_key), json={"goal_type": "private.goal", "data": {}})
    assert goal.status_code == 202, goal.text
    goal_id = goal.json()["goal_id"]

    with sx.make_client(invoker, ttl=30.0) as client:  # a fresh cache, on
        poison = f"Basic {secrets.token_urlsafe(12)}"
        first = client.get("/v1/goals", headers={"authorization": poison, "x-api-key": victim_key})
        assert first.status_code == 403, first.text
        # the poisoned value alone, as the attacker then sends it: not the victim (refused, from the cache or not)
        for _ in range(2):
            again = client.get("/v1/goals", headers={"authorization": poison})
            assert again.status_code == 403, again.text
            assert goal_id not in again.text
        assert client.get(f"/v1/goals/{goal_id}", headers={"authorization": poison}).status_code == 403
        # what the cache holds under the attacker's value is a refusal, never the victim's identity
        cached = client.gateway._cache[(poison,)]
        assert cached[1] is None

        # the legitimate use next to it: the victim's Bearer key, cached, sees its goal
        for _ in range(2):
            mine = client.get(f"/v1/goals/{goal_id}", headers=sx.bearer(victim_key))
            assert mine.status_code == 200, mine.text
        assert 'desc="cached"' in mine.headers["server-timing"]
        # with the cache on, Authorization is the required identity source (as on AWS): X-API-Key alone is a 401
        assert client.get("/v1/goals", headers={"x-api-key": victim_key}).status_code == 401

    with sx.make_client(invoker, ttl=0) as uncached:  # cache off: X-API-Key alone is honoured
        listed = uncached.get("/v1/goals", headers={"x-api-key": victim_key})
        assert listed.status_code == 200 and goal_id in listed.text
        # and still not together with an Authorization header
        assert uncached.get("/v1/goals", headers={"authorization": "Basic eA==", "x-api-key": victim_key}
                            ).status_code == 403
