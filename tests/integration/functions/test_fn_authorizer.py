"""API keys and the HTTP API Lambda authorizer, on the real database (keys created with the owner connection, resolved
as soorma_app through the SECURITY DEFINER function)."""

from __future__ import annotations

import psycopg
import pytest

from soorma.functions.gateway import authorizer
from soorma.functions.gateway.keys import (
    PepperMissing,
    create_api_key,
    hash_secret,
    parse_api_key,
    resolve_api_key,
    revoke_api_key,
)
from soorma.grants import derive_key
from soorma.identity import OverrideRefused, act_for
from soorma.testing import acting_headers, grant


def make_key(owner, fx, role: str):
    me = fx.new_identity(role=role)
    key = create_api_key(owner, platform_tenant_id=me.platform_tenant_id, service_tenant_id=me.service_tenant_id,
                         service_user_id=me.service_user_id, role=role, name=f"{role} key", pepper=fx.PEPPER)
    return key, me


def authorize(db, fx, headers):
    return authorizer.authorize(fx.authorizer_event(headers), db, pepper=fx.PEPPER)


def test_key_format_and_storage(owner, fx):
    key, me = make_key(owner, fx, "developer")
    key_id, secret = parse_api_key(key)
    assert key == f"sk_{key_id}_{secret}" and len(key_id) == 16
    row = owner.execute("select key_hash, principal_id, role, revoked_at from gateway.api_keys where key_id = %s",
                        (key_id,)).fetchone()
    assert row[0] == hash_secret(secret, pepper=fx.PEPPER) and secret not in row[0]
    assert row[1] == f"pr_{key_id}" and row[2] == "developer" and row[3] is None


def test_resolve_as_app_role(owner, db, fx):
    key, me = make_key(owner, fx, "user")
    with db.transaction() as conn:
        identity = resolve_api_key(conn, key, pepper=fx.PEPPER)
        assert identity.platform_tenant_id == me.platform_tenant_id
        assert identity.service_tenant_id == me.service_tenant_id
        assert identity.service_user_id == me.service_user_id
        assert identity.role == "user"
        key_id, secret = parse_api_key(key)
        assert resolve_api_key(conn, f"sk_{key_id}_{secret}x", pepper=fx.PEPPER) is None
        assert resolve_api_key(conn, key, pepper="another-pepper") is None
        assert resolve_api_key(conn, "sk_0000000000000000_whatever", pepper=fx.PEPPER) is None
        for bad in ("", "sk_", "sk_short_x", "pk_0123456789abcdef_x", "sk_0123456789abcdef", "x" * 500):
            assert resolve_api_key(conn, bad, pepper=fx.PEPPER) is None
    with pytest.raises(PepperMissing):
        with db.transaction() as conn:
            resolve_api_key(conn, key, pepper="")


def test_app_role_manages_keys_only_of_its_platform_tenant_and_never_reads_hashes(db, app_dsn, fx):
    me = fx.new_identity(role="admin")
    other = fx.new_identity(role="admin")
    # what the local stack does: create a key on a soorma_app connection whose identity is the key's tenant
    with db.transaction(me) as conn:
        key = create_api_key(conn, platform_tenant_id=me.platform_tenant_id, service_tenant_id="st-x",
                             service_user_id="su-x", role="agent", pepper=fx.PEPPER)
        listed = conn.execute("select key_id, role, service_user_id from gateway.api_keys").fetchall()
        assert listed == [{"key_id": parse_api_key(key)[0], "role": "agent", "service_user_id": "su-x"}]
    with pytest.raises(psycopg.errors.InsufficientPrivilege):  # RLS: another platform tenant
        with db.transaction(me) as conn:
            create_api_key(conn, platform_tenant_id=other.platform_tenant_id, service_tenant_id="s",
                           service_user_id="u", role="admin", pepper=fx.PEPPER)
    with pytest.raises(psycopg.errors.InsufficientPrivilege):  # no identity at all
        with db.transaction() as conn:
            create_api_key(conn, platform_tenant_id=me.platform_tenant_id, service_tenant_id="s",
                           service_user_id="u", role="user", pepper=fx.PEPPER)
    with pytest.raises(psycopg.errors.InsufficientPrivilege):  # the hash column is never readable
        with db.transaction(me) as conn:
            conn.execute("select key_hash from gateway.api_keys")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        with db.transaction(me) as conn:
            conn.execute("delete from gateway.api_keys")
    with db.transaction(other) as conn:  # another tenant neither sees nor revokes it
        assert conn.execute("select count(*) as n from gateway.api_keys").fetchone()["n"] == 0
        assert revoke_api_key(conn, key) is False
    with db.transaction() as conn:
        assert resolve_api_key(conn, key, pepper=fx.PEPPER).service_user_id == "su-x"
    with db.transaction(me) as conn:
        assert revoke_api_key(conn, key) is True
    with db.transaction() as conn:
        assert resolve_api_key(conn, key, pepper=fx.PEPPER) is None


def test_create_key_validates(owner, fx):
    with pytest.raises(ValueError):
        create_api_key(owner, platform_tenant_id="bad tenant", service_tenant_id="s", service_user_id="u",
                       role="user", pepper=fx.PEPPER)
    with pytest.raises(ValueError):
        create_api_key(owner, platform_tenant_id="p", service_tenant_id="s", service_user_id="u",
                       role="root", pepper=fx.PEPPER)


def test_bearer_and_x_api_key(owner, db, fx):
    key, me = make_key(owner, fx, "developer")
    for headers in ({"Authorization": f"Bearer {key}"}, {"authorization": f"bearer {key}"}, {"X-API-Key": key}):
        answer = authorize(db, fx, headers)
        assert answer["isAuthorized"] is True, headers
        ctx = answer["context"]
        assert ctx["platform_tenant_id"] == me.platform_tenant_id
        assert ctx["service_tenant_id"] == me.service_tenant_id
        assert ctx["service_user_id"] == me.service_user_id
        assert ctx["role"] == "developer" and ctx["principal_id"].startswith("pr_")


def test_wrong_missing_and_revoked_keys(owner, db, fx):
    key, _ = make_key(owner, fx, "user")
    key_id, secret = parse_api_key(key)
    assert authorize(db, fx, {}) == {"isAuthorized": False}
    assert authorize(db, fx, {"authorization": "Basic abc"}) == {"isAuthorized": False}
    assert authorize(db, fx, {"authorization": "Bearer "}) == {"isAuthorized": False}
    assert authorize(db, fx, {"authorization": f"Bearer sk_{key_id}_{secret[:-1]}"}) == {"isAuthorized": False}
    assert authorize(db, fx, {"x-api-key": "sk_ffffffffffffffff_" + secret}) == {"isAuthorized": False}
    assert authorize(db, fx, {"authorization": f"Bearer {key}"})["isAuthorized"] is True
    assert revoke_api_key(owner, key_id) is True
    assert revoke_api_key(owner, key) is False  # already revoked (a whole key is accepted as the id)
    assert authorize(db, fx, {"authorization": f"Bearer {key}"}) == {"isAuthorized": False}


@pytest.mark.parametrize("role", ["agent", "admin", "user", "developer"])
def test_the_answer_names_the_principal_whatever_the_override_headers_say(owner, db, fx, role):
    """The answer depends on the credential alone, so API Gateway may cache it keyed on Authorization: the service
    tenant/user headers are applied (or refused) by the functions, per request (soorma.identity.act_for)."""
    key, me = make_key(owner, fx, role)
    plain = authorize(db, fx, {"authorization": f"Bearer {key}"})
    for headers in ({"x-soorma-service-tenant": "acme", "x-soorma-service-user": "alice"},
                    {"x-soorma-service-tenant": "not valid!"}):
        answer = authorize(db, fx, {"authorization": f"Bearer {key}", **headers})
        assert answer == plain
    assert plain["isAuthorized"] is True and plain["context"]["service_user_id"] == me.service_user_id


def test_override_headers_are_honoured_for_admin(fx):
    me = fx.new_identity("admin")
    acting = act_for(me, {"x-soorma-service-tenant": "acme", "x-soorma-service-user": "alice"})
    assert (acting.service_tenant_id, acting.service_user_id) == ("acme", "alice")
    assert acting.platform_tenant_id == me.platform_tenant_id and acting.principal_id == me.principal_id
    only_user = act_for(me, {"x-soorma-service-user": "bob"})
    assert (only_user.service_tenant_id, only_user.service_user_id) == (me.service_tenant_id, "bob")
    for bad in ("a b", "", "x" * 65, "tenant.dot", "*"):
        with pytest.raises(OverrideRefused):
            act_for(me, {"x-soorma-service-tenant": bad})


def test_override_headers_are_honoured_for_an_agent_with_the_events_grant(fx):
    """An agent acts for a user only with the delivery grant of that user's event (issue 12, finding 8; the attack
    itself is tests/security/test_finding08_act_for_grant.py)."""
    me = fx.new_identity("agent")
    key = derive_key(fx.PEPPER)
    headers = acting_headers(fx.PEPPER, me.platform_tenant_id, "acme", "alice")
    acting = act_for(me, headers, grant_key=key)
    assert (acting.service_tenant_id, acting.service_user_id) == ("acme", "alice")
    assert acting.platform_tenant_id == me.platform_tenant_id and acting.principal_id == me.principal_id
    only_user = {"x-soorma-service-user": "bob",
                 "x-soorma-grant": grant(fx.PEPPER, me.platform_tenant_id, me.service_tenant_id, "bob")}
    assert act_for(me, only_user, grant_key=key).service_user_id == "bob"
    with pytest.raises(OverrideRefused, match="delivery grant"):
        act_for(me, {"x-soorma-service-tenant": "acme", "x-soorma-service-user": "alice"}, grant_key=key)
    for bad in ("a b", "", "x" * 65, "tenant.dot", "*"):
        with pytest.raises(OverrideRefused):
            act_for(me, {"x-soorma-service-tenant": bad}, grant_key=key)
    own = {"x-soorma-service-tenant": me.service_tenant_id, "x-soorma-service-user": me.service_user_id}
    assert act_for(me, own, grant_key=key) == me  # acting as itself needs no grant


@pytest.mark.parametrize("role", ["user", "developer"])
def test_override_headers_are_refused_for_user_and_developer(fx, role):
    me = fx.new_identity(role)
    with pytest.raises(OverrideRefused, match="may not act for another"):
        act_for(me, {"x-soorma-service-tenant": "acme", "x-soorma-service-user": "alice"})
    with pytest.raises(OverrideRefused):
        act_for(me, {"x-soorma-service-user": "alice"})
    own = {"x-soorma-service-tenant": me.service_tenant_id, "x-soorma-service-user": me.service_user_id}
    assert act_for(me, own) == me


def test_functions_apply_the_override_headers_of_the_request(fx, registry, pepper):
    """Through a function (the registry) with an authorizer context naming the principal: an agent's headers with
    the event's grant choose the service tenant/user it writes as; a user's are refused with 403 and the reason,
    writing nothing."""
    agent = fx.new_identity("agent")
    event = fx.http_event("POST", "/v1/agents", identity=agent,
                          body={"agent": {"agent_id": "acting", "name": "acting"}})
    event["headers"].update(acting_headers(pepper, agent.platform_tenant_id, "acme", "alice"))
    assert fx.invoke(registry, event).status == 200
    user = fx.new_identity("developer", pt=agent.platform_tenant_id)
    refused = fx.http_event("POST", "/v1/agents", identity=user,
                            body={"agent": {"agent_id": "refused", "name": "refused"}})
    refused["headers"]["x-soorma-service-user"] = "alice"
    reply = fx.invoke(registry, refused)
    assert reply.status == 403 and "may not act for another" in reply.body["detail"]
    listed = fx.invoke(registry, fx.http_event("GET", "/v1/agents", identity=user)).body
    assert [a["agentId"] for a in listed["agents"]] == ["acting"]


def test_lambda_handler_from_environment(owner, fx, app_env):
    key, me = make_key(owner, fx, "agent")
    answer = authorizer.handler(fx.authorizer_event({"authorization": f"Bearer {key}"}), None)
    assert answer["isAuthorized"] is True and answer["context"]["platform_tenant_id"] == me.platform_tenant_id
    assert authorizer.handler(fx.authorizer_event({"authorization": "Bearer sk_nope"}), None) == \
        {"isAuthorized": False}
