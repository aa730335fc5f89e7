"""One collision-free consumer name per (platform tenant, agent), used by the local routes, the deployer's wait, the
local process runner and the bridge alike."""

from __future__ import annotations

import itertools

import pytest

from soorma.functions.bridge import Route, consumer_name_for
from soorma.functions.bridge.routes import bridge_route, consumer_name
from soorma.process import consumer_name as process_consumer_name


def test_tenant_agent_split_cannot_collide():
    assert consumer_name("a__b", "c") != consumer_name("a", "b__c")
    assert consumer_name("a_", "_b") != consumer_name("a", "__b") != consumer_name("a__", "b")
    pairs = [("a", "b__c"), ("a__b", "c"), ("a_", "_b__c"), ("a__b_", "c"), ("a", "b"), ("a_", "b"), ("a", "_b"),
             ("a___b", "c"), ("a", "_b___c"), ("a__", "_b")]
    names = [consumer_name(t, a) for t, a in pairs]
    assert len(set(names)) == len(names), dict(zip(pairs, names))


def test_every_place_uses_the_same_name():
    for tenant, agent in itertools.product(["local", "a__b", "t-1"], ["calculator", "b__c", "x_"]):
        assert consumer_name(tenant, agent) == consumer_name_for(tenant, agent) == process_consumer_name(tenant, agent)
    assert consumer_name("local", "calculator") == "local__calculator"  # unambiguous names stay readable


def test_bridge_routes_of_colliding_pairs_differ():
    def registry_row(tenant, name):
        return {"platform_tenant_id": tenant, "name": name, "deployment": {
            "function_name": f"fn-{tenant}-{name}", "transport": "nats",
            "subscriptions": [{"topic": "action-requests", "event_type": "x.y"}]}}

    one, two = bridge_route(registry_row("a__b", "c")), bridge_route(registry_row("a", "b__c"))
    assert isinstance(one, Route) and isinstance(two, Route)
    assert one.consumer_name != two.consumer_name


def test_invalid_parts_are_refused():
    with pytest.raises(ValueError):
        consumer_name("bad tenant", "agent")
    with pytest.raises(ValueError):
        consumer_name("tenant", "a.b")
