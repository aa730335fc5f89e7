"""``publish_all`` (the handler commit's relay, issue 19): a publisher's ``publish_many`` when it has one (one wait
for all acks), else one ``publish`` after the other; either way a failure says how many envelopes were stored."""

from __future__ import annotations

import pytest

from soorma.events import EventEnvelope
from soorma.functions.gateway.publisher import PayloadTooLarge, PublishError, PublishResult, publish_all


def envelopes(n: int) -> list[EventEnvelope]:
    return [EventEnvelope(type=f"a.e{i}", topic="action-requests", platform_tenant_id="pt1") for i in range(n)]


class OneByOne:
    """A publisher with ``publish`` only (as :class:`SnsPublisher`), refusing the envelope at ``fail_at``."""

    def __init__(self, fail_at: int | None = None, error: type[PublishError] = PublishError) -> None:
        self.fail_at, self.error, self.stored = fail_at, error, []

    def publish(self, envelope: EventEnvelope) -> PublishResult:
        if len(self.stored) == self.fail_at:
            raise self.error("event bus unavailable")
        self.stored.append(envelope.id)
        return PublishResult()


def test_one_by_one_in_order():
    sent = envelopes(3)
    publisher = OneByOne()
    assert publish_all(publisher, sent) == [PublishResult()] * 3
    assert publisher.stored == [e.id for e in sent]


@pytest.mark.parametrize("error", [PublishError, PayloadTooLarge])
def test_a_failure_says_how_many_were_stored_and_stops(error):
    sent = envelopes(4)
    publisher = OneByOne(fail_at=2, error=error)
    with pytest.raises(error) as failed:
        publish_all(publisher, sent)
    assert failed.value.published == 2
    assert publisher.stored == [e.id for e in sent[:2]]  # nothing after the failed one was sent


def test_a_publisher_with_publish_many_gets_them_all_at_once():
    calls = []

    class Batching(OneByOne):
        def publish(self, envelope):
            raise AssertionError("one wait for all: publish_many")

        def publish_many(self, batch):
            calls.append([e.id for e in batch])
            return [PublishResult(duplicate=True)] * len(batch)

    sent = envelopes(3)
    assert publish_all(Batching(), sent) == [PublishResult(duplicate=True)] * 3
    assert calls == [[e.id for e in sent]]
