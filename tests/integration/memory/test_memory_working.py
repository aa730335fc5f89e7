"""Working memory (plan-scoped key/value) through the Lambda handler."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("value", [{"a": [1, 2, {"b": None}]}, [1, "two", 3.5], "text", 42, True, None])
def test_put_get_roundtrip(api, make_identity, value):
    who = make_identity()
    put = api.call("PUT", "/v1/memory/working/plan-1/state", who, body={"value": value})
    assert put.status == 200, put.body
    assert put.body["planId"] == "plan-1" and put.body["key"] == "state" and put.body["value"] == value
    got = api.call("GET", "/v1/memory/working/plan-1/state", who)
    assert got.status == 200
    assert {k: got.body[k] for k in ("planId", "key", "value")} == {"planId": "plan-1", "key": "state", "value": value}


def test_overwrite_delete_and_plan_cleanup(api, make_identity):
    who = make_identity()
    plan = "00000000-0000-0000-0000-000000000000"
    first = api.call("PUT", f"/v1/memory/working/{plan}/counter", who, body={"value": 1}).body
    second = api.call("PUT", f"/v1/memory/working/{plan}/counter", who, body={"value": 2}).body
    assert first["id"] == second["id"] and second["value"] == 2
    api.call("PUT", f"/v1/memory/working/{plan}/other", who, body={"value": "x"})
    api.call("PUT", "/v1/memory/working/another-plan/kept", who, body={"value": "y"})

    deleted = api.call("DELETE", f"/v1/memory/working/{plan}/counter", who)
    assert deleted.status == 200 and deleted.body["success"] is True and deleted.body["deleted"] is True
    again = api.call("DELETE", f"/v1/memory/working/{plan}/counter", who)
    assert again.status == 200 and again.body["deleted"] is False
    assert api.call("GET", f"/v1/memory/working/{plan}/counter", who).status == 404

    cleanup = api.call("DELETE", f"/v1/memory/working/{plan}", who)
    assert cleanup.status == 200 and cleanup.body["countDeleted"] == 1 and cleanup.body["success"] is True
    assert api.call("GET", f"/v1/memory/working/{plan}/other", who).status == 404
    assert api.call("GET", "/v1/memory/working/another-plan/kept", who).body["value"] == "y"


def test_missing_key_is_404_with_reason(api, make_identity):
    reply = api.call("GET", "/v1/memory/working/p/nothing", make_identity())
    assert reply.status == 404 and "p/nothing" in reply.body["detail"]


def test_tenant_isolation(api, make_identity):
    owner = make_identity()
    intruders = [
        make_identity(platform=owner.platform_tenant_id),
        make_identity(platform=owner.platform_tenant_id, service=owner.service_tenant_id),
        make_identity(service=owner.service_tenant_id, user=owner.service_user_id),
    ]
    api.call("PUT", "/v1/memory/working/plan/secret", owner, body={"value": "owner's"})
    for intruder in intruders:
        assert api.call("GET", "/v1/memory/working/plan/secret", intruder).status == 404
        assert api.call("DELETE", "/v1/memory/working/plan/secret", intruder).body["deleted"] is False
        assert api.call("DELETE", "/v1/memory/working/plan", intruder).body["countDeleted"] == 0
        # writing the same plan/key creates the intruder's own entry
        api.call("PUT", "/v1/memory/working/plan/secret", intruder, body={"value": "intruder's"})
    assert api.call("GET", "/v1/memory/working/plan/secret", owner).body["value"] == "owner's"


def test_bad_input(api, make_identity):
    who = make_identity()
    assert api.call("PUT", "/v1/memory/working/p/k", who, body={}).status == 422  # no value
    assert api.call("PUT", "/v1/memory/working/p/k", who, raw_body="{not json").status in (400, 422)
    assert api.call("PUT", "/v1/memory/working/p/k", who, body={"value": "nul\u0000"}).status == 422
    assert api.call("PUT", "/v1/memory/working/p/" + "k" * 256, who, body={"value": 1}).status == 422
    assert api.call("GET", "/v1/memory/working/p/k%00x", who).status == 422
