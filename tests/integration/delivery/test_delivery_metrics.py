"""The bridge's delivery metrics: CloudWatch EMF objects (namespace Soorma, dimension agent) flushed periodically,
and the lag and latency figures in ``stats()`` (what ``soorma local status`` prints)."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.timeout(30)


def totals(lines: list[str], agent: str) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for line in lines:
        obj = json.loads(line)
        if obj.get("agent") != agent:
            continue
        (directive,) = obj["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == "Soorma"
        assert directive["Dimensions"] == [["agent"]]
        units = {m["Name"]: m["Unit"] for m in directive["Metrics"]}
        assert units.get("DeliveryLatency", "Milliseconds") == "Milliseconds"
        assert units["Delivered"] == units["Retried"] == units["DeadLettered"] == "Count"
        assert isinstance(obj["_aws"]["Timestamp"], int)
        for name in units:
            out.setdefault(name, []).extend(obj[name])
    return out


async def test_emf_metrics_and_stats(js, make_bridge, dk):
    tenant = dk.new_id("m")
    route = dk.make_route(tenant, "counter", "job", batch_size=5, max_deliveries=2)
    events = [dk.envelope(tenant, "job", n=i) for i in range(30)]
    flaky, poison = events[3].id, events[7].id

    def handler(event_id, record):
        count = record["attributes"]["ApproximateReceiveCount"]
        if event_id == poison or (event_id == flaky and count == "1"):
            raise RuntimeError("no")

    lines: list[str] = []
    invoker = dk.RecordingInvoker(handler)
    bridge = await make_bridge([route], invoker, metrics_interval_s=0.3, metrics_sink=lines.append)
    await dk.publish_all(js, events)
    await dk.wait_until(lambda: bridge.stats()[route.consumer_name]["dead_lettered"] == 1
                        and bridge.stats()[route.consumer_name]["succeeded"] == 29, timeout_s=10)
    flushed = len(lines)
    await dk.wait_until(lambda: len(lines) >= flushed + 2, timeout_s=5)  # at least one more full interval

    got = totals(lines, "counter")
    assert sum(got["Delivered"]) == 29
    assert sum(got["Retried"]) == 2  # the flaky one once, the poison once before its last delivery
    assert sum(got["DeadLettered"]) == 1
    assert sum(got["Invocations"]) >= 6
    assert len(got["DeliveryLatency"]) == 29 and all(0 <= v < 10_000 for v in got["DeliveryLatency"])
    assert got["ConsumerLag"][-1] == 0
    last = json.loads(lines[-1])
    assert last["consumer"] == route.consumer_name and last["platform_tenant_id"] == tenant

    stats = bridge.stats()[route.consumer_name]
    assert stats["consumer_lag"] == 0
    assert stats["delivery_latency_window"] == 29
    assert 0 <= stats["delivery_latency_p50_ms"] <= stats["delivery_latency_p99_ms"] < 10_000


async def test_emf_sample_is_bounded_and_metrics_can_be_disabled(js, make_bridge, dk, monkeypatch):
    tenant = dk.new_id("m")
    route = dk.make_route(tenant, "bulk", "job", batch_size=50)
    lines: list[str] = []
    bridge = await make_bridge([route], dk.RecordingInvoker(), metrics_interval_s=3600, metrics_sink=lines.append)
    await dk.publish_all(js, [dk.envelope(tenant, "job", n=i) for i in range(250)])
    await dk.wait_until(lambda: bridge.stats()[route.consumer_name]["succeeded"] == 250, timeout_s=10)
    (obj,) = bridge.flush_metrics()
    assert obj["Delivered"] == [250.0]
    assert len(obj["DeliveryLatency"]) == 99  # a uniform sample: EMF takes at most 100 values per metric
    assert len(lines) == 1
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    assert bridge.flush_metrics() == [] and len(lines) == 1
