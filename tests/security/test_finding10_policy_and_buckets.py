"""Issue 12, finding 10 (the runtime engineer's part), through the real gateway behind the local API Gateway and the
real authorizer, on the session's PostgreSQL and NATS:

* the payload-size policy measured only ``data``: an envelope keeps unknown fields, so a 950 KB envelope with a tiny
  ``data`` passed a 100-byte ``max_payload_bytes`` rule. Now the whole envelope is measured as it will be published;
* JWT rate-limit buckets were keyed by the credential alone (``jwt:<sub>``): another tenant's token naming the same
  subject (and ``jti``) shared, and drained, the bucket. Now buckets are keyed by platform tenant and credential.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.timeout(120)


def test_a_large_envelope_with_small_data_is_refused_by_a_small_payload_rule(api, platform_admin, gx):
    t = gx.onboard(api, platform_admin)
    admin, user = gx.bearer(t.keys["admin"]), gx.bearer(t.keys["user"])
    assert api.put("/v1/policy", headers=admin, json={"max_payload_bytes": 2000}).status_code == 200
    small = {"type": "facts.noted", "topic": "business-facts", "data": {"n": 1}}
    # the legitimate use: a small envelope is published
    assert api.post("/v1/events/publish", headers=user, json={"event": small}).status_code == 200
    # the attack: the same tiny data, padded with an unknown envelope field (kept and published as sent)
    padded = {**small, "padding": "x" * 200_000}
    reply = api.post("/v1/events/publish", headers=user, json={"event": padded})
    assert reply.status_code == 403, reply.text
    assert reply.json()["rule"] == "max_payload_bytes" and "envelope" in reply.json()["detail"]


def test_two_tenants_jwts_with_the_same_subject_and_jti_do_not_share_a_bucket(api, platform_admin, gx):
    a, b = gx.onboard(api, platform_admin), gx.onboard(api, platform_admin)
    # tenant A's callers: 2 requests of burst; tenant B keeps its generous limits
    assert api.patch(f"/v1/tenants/{a.id}", headers=gx.bearer(platform_admin),
                     json={"key_rps": 0.01, "key_burst": 2}).status_code == 200
    same = {"sub": "shared-subject", "jti": "shared-jti"}
    token_a = gx.jwt_for(a.id, "user", **same)
    token_b = gx.jwt_for(b.id, "user", **same)
    answers = [api.get("/v1/goals", headers=gx.bearer(token_a)).status_code for _ in range(3)]
    assert answers == [200, 200, 429]  # A's own limit holds
    # B's token names the same subject and jti: its bucket is its own, full
    answers = [api.get("/v1/goals", headers=gx.bearer(token_b)).status_code for _ in range(5)]
    assert answers == [200] * 5
    # and B's requests did not refill A's bucket either
    assert api.get("/v1/goals", headers=gx.bearer(token_a)).status_code == 429
