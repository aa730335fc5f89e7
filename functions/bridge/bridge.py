"""The NATS JetStream → function push bridge.

For each :class:`~.types.Route` the bridge keeps one durable pull consumer on ``SOORMA_EVENTS`` (``consumer.py``)
and runs ``max_concurrency`` fetch workers. A worker pulls up to ``batch_size`` messages, invokes the function once
with an SQS-shaped payload (``payload.py``) and settles every message from the response, the way Lambda's SQS
event source mapping does with ``ReportBatchItemFailures``
(https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-errorhandling.html). Ack kinds (``+ACK``, ``-NAK``
with delay, ``+WPI``, ``+TERM``) are JetStream's acknowledgement models
(https://docs.nats.io/using-nats/developer/develop_jetstream/model_deep_dive#acknowledgement-models); delivery count,
stream sequence and stored time come from the ack reply subject (ADR-15):

* succeeded → ``+ACK`` (only after the function returned; at-least-once). Acks are not confirmed by the server
  (no double ack): a lost ack means a redelivery after the ack wait, which idempotent handlers absorb;
* failed, ``num_delivered < max_deliveries`` → ``-NAK`` with a delay from the backoff;
* failed, ``num_delivered >= max_deliveries`` → copied to ``SOORMA_DLQ`` (``dlq.py``), then ``+TERM``;
  if that copy cannot be stored the message is NAKed instead, never dropped;
* the function is throttled (:class:`~.types.FunctionThrottled`) → every message NAKed with a delay and the route's
  workers pause (exponential, equal jitter; reset by the next invocation that is not throttled). Throttling never
  dead-letters, but the redeliveries it causes do raise ``num_delivered`` (as SQS's receive count does);
* failed and named in the response's ``soormaRetryLater`` extension (the platform could not serve it now: its
  database resuming from a pause, issue 16) → ``-NAK`` with a delay of at least the function's ``retryAfterSeconds``
  and at least the "unavailable" backoff (equal jitter, 2 s doubling to 30 s), and the delivery is **not counted**
  toward ``max_deliveries``: the bridge remembers how many deliveries of each message were excused that way and
  takes them off ``num_delivered`` when it decides on dead-lettering. Why not count with a longer backoff: an Aurora
  resume takes 15-30 s, a handful of redeliveries would have to be spread over minutes for every ordinary failure
  too. The excuse is bounded: a message older than ``unavailable_max_age_s`` (default 15 minutes, an outage rather
  than a resume) is counted as usual, so nothing is retried for ever. The memory is per replica and bounded
  (:data:`EXCUSED_MAX_ENTRIES`); forgetting it only means counting as before;
* a message whose data is not UTF-8 cannot become a ``body`` string: it is dead-lettered at once, uninvoked;
* failed and named in the response's ``soormaTerminalFailures`` extension (``payload.py``; the SDK's entry point
  reports a malformed envelope there) → dead-lettered at once with the function's reason, then ``+TERM``, whatever
  its delivery count (if the copy cannot be stored it is NAKed, as above).

While an invocation runs, its messages get ``+WPI`` (``in_progress``) every half ack wait, so a slow function does not
cause a redelivery to another worker. The bridge itself gives up on an invocation after ``timeout_s +
invoke_grace_s`` and treats it as failed.

Results for one goal are handed to a route's function one batch at a time (issue 19): a worker whose batch holds an
``action-results`` event of a goal (its ``goal_id``, else ``plan_id``, else ``trace_id``) that another worker of the
same route is delivering right now waits for that invocation to end before invoking. The parallel sub-tasks of a
delegation answer at nearly the same moment; delivered side by side, both handlers would read their parent's task
context at the same version and the second save would lose the race (a 409 and a re-run of the handler: another
read, another write, a backoff). One after the other, the second reads what the first wrote. Only results are
grouped (requests of one goal still run in parallel), only within one route (one agent), and the wait never holds
a result longer than the invocation before it. Lambda's SQS event source mapping has no such grouping on standard
queues: there, conflicting results are still merged by the SDK's re-run (``ConflictReruns``).

Results of one goal arriving together go in ONE invocation: a worker whose batch holds results (and has room) keeps
it open for ``results_window_s`` (default 10 ms, a batching window like the SQS mapping's
``MaximumBatchingWindowInSeconds`` but only for results) before invoking, and a worker of the same route that fetches
in that time only results of the open batch's goals hands them to that batch instead of waiting for its invocation
to end. The function handles them one after the other in one execution environment (the second reads what the first
committed, from the SDK's cache of its own commits: no conflict, no read), so the second result costs no hop of its
own. Once a result joined, the window closes ``results_join_grace_s`` (default 2 ms) after the latest join, if that
is sooner: the results of a fan-out arrive a few milliseconds apart, so a batch that a second result joined has
usually caught what it waited for, and the rest of the window would only delay it (the goal's critical path runs
through it). A further result in that grace extends it again, up to the window's end; a full batch closes at once.
The messages are settled exactly as in any batch (acked after the function answered, each by its own outcome).
Not for the platform's own consumer (the tracker, platform tenant ``platform``): it records events, it does not
merge results, and its answers to live streams should not wait.

A message carrying the header ``Soorma-Replay-Consumer`` (set by ``soorma dlq replay``, :mod:`.dlq`) is meant for
that one consumer only: every other consumer whose filter it matches acks it without invoking its function, so a
replayed dead letter reaches the agent that failed it and not, a second time, every other subscriber.

Metrics (:mod:`.metrics`): every ``metrics_interval_s`` one CloudWatch EMF object per route (namespace ``Soorma``,
dimension ``agent``: delivered, retried, dead-lettered, throttled, consumer lag, delivery latency) goes to
``metrics_sink`` (standard output by default); :meth:`Bridge.stats` shows the lag and latency percentiles too.

Routes are re-read every ``refresh_interval_s``; new routes start, changed ones are applied (consumer updated in
place, workers added or retired, batch size and timeout used from the next fetch), removed ones have their workers
stopped after their current batch. Consumers are never deleted by the bridge. If ``routes()`` raises, the bridge keeps
the routes it has. Several replicas may run against one NATS: a pull consumer hands each message to one fetcher.

:meth:`Bridge.stop` stops fetching (messages that arrive after the stop are NAKed without delay so another replica
takes them), waits up to ``drain_timeout_s`` for in-flight invocations and their acks, cancels what is left (those
messages are redelivered after their ack wait) and drains the connection so every ack is flushed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Iterable

import nats
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from soorma.delivery.backoff import ExponentialBackoff
from soorma.delivery.consumer import ConsumerPolicy, ensure_consumer
from soorma.delivery.dead_letters import H_REPLAY_CONSUMER, clip, dead_letter
from soorma.jetstream import ensure_streams
from soorma.subjects import STREAM

from .fetch import fetch_ready
from .metrics import DeliveryMetrics
from .payload import Outcome, build_payload, build_record, interpret
from .types import ConsumerStats, FunctionThrottled, Invoker, Route

log = logging.getLogger("soorma.functions.bridge")

#: The topic whose events are delivered one goal at a time per route (see the module docstring).
RESULTS_TOPIC = "action-results"
#: The platform tenant of the platform's own consumer (the tracker's route): no results window there.
PLATFORM_CONSUMER_TENANT = "platform"


def result_group(msg: Msg) -> str | None:
    """The goal an ``action-results`` message belongs to (its envelope's ``goal_id``, else ``plan_id``, else
    ``trace_id``; subjects are ``soorma.<platform tenant>.<topic>.<event type>``), or ``None`` for any other message
    or one whose body is not a JSON object."""
    parts = msg.subject.split(".", 3)
    if len(parts) < 4 or parts[2] != RESULTS_TOPIC:
        return None
    try:
        body = json.loads(msg.data)
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    group = body.get("goal_id") or body.get("plan_id") or body.get("trace_id")
    return f"{parts[1]}/{group}" if isinstance(group, str) and group else None

RoutesSource = Callable[[], Awaitable[list[Route]]]

#: Messages whose "platform unavailable" deliveries the bridge remembers (least recently excused dropped first).
EXCUSED_MAX_ENTRIES = 100_000


@dataclass
class _Worker:
    retire: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task | None = None


@dataclass
class _OpenBatch:
    """A batch of results waiting out its window: other workers may add results of its ``groups`` to ``msgs``."""

    msgs: list[Msg]
    groups: set[str]
    limit: int
    joined: asyncio.Event = field(default_factory=asyncio.Event)  # set by each join, cleared by the window's wait


@dataclass
class _Runner:
    """The live state of one route in this replica."""

    route: Route
    workers: list[_Worker] = field(default_factory=list)
    # result group (see :func:`result_group`) -> the end of the invocation delivering it now
    delivering: dict[str, asyncio.Future] = field(default_factory=dict)
    # result group -> the batch still open for more results of it (see results_window_s)
    collecting: dict[str, "_OpenBatch"] = field(default_factory=dict)
    ensured_at: float | None = None  # monotonic time of the last successful ensure_consumer
    needs_ensure: bool = True
    throttled_until: float = 0.0
    throttle_streak: int = 0


class Bridge:
    """Push events from JetStream consumers to functions (see the module docstring for the semantics).

    ``routes`` is called on start and every ``refresh_interval_s``. ``backoff(attempt)`` gives the NAK delay for a
    message's ``attempt``-th failed delivery (default :class:`ExponentialBackoff` base 1 s, cap 60 s, full jitter);
    its ``pause(streak)`` method, when present, paces a throttled route.

    Tuning (keyword-only): ``fetch_timeout_s`` (how long one pull waits for messages; bounds how fast ``stop`` and
    route removal take effect), ``ack_margin_s`` (ack wait = ``timeout_s`` + this), ``invoke_grace_s`` (the bridge's
    own invocation limit = ``timeout_s`` + this), ``info_interval_s`` (how often an unchanged route's consumer is
    re-checked: recreated if deleted, lag refreshed), ``region`` (the records' ``awsRegion``),
    ``metrics_interval_s`` (EMF flush period; ``None`` turns the periodic flush off), ``metrics_sink`` (where EMF lines
    go; default standard output), ``metrics_service`` (an optional ``service`` dimension), ``unavailable_backoff``
    (its ``pause(n)`` paces the ``n``-th "retry later" redelivery of a message; default 2 s doubling to 30 s),
    ``unavailable_max_age_s`` (how old a message may be and still have such deliveries not counted),
    ``results_window_s`` (how long a batch of results stays open for more results of its goals; ``0``: not at all),
    ``results_join_grace_s`` (how long it stays open after the latest result that joined it, within that window).
    """

    def __init__(
        self,
        nats_url: str,
        routes: RoutesSource,
        invoker: Invoker,
        *,
        refresh_interval_s: float = 2.0,
        backoff: Callable[[int], float] | None = None,
        name: str = "bridge",
        fetch_timeout_s: float = 1.0,
        ack_margin_s: float = 10.0,
        invoke_grace_s: float = 5.0,
        info_interval_s: float = 30.0,
        region: str = "local",
        metrics_interval_s: float | None = 60.0,
        metrics_sink: Callable[[str], None] | None = None,
        metrics_service: str | None = None,
        unavailable_backoff: ExponentialBackoff | None = None,
        unavailable_max_age_s: float = 900.0,
        results_window_s: float = 0.01,
        results_join_grace_s: float = 0.002,
    ) -> None:
        self.nats_url = nats_url
        self.name = name
        self.refresh_interval_s = refresh_interval_s
        self.fetch_timeout_s = fetch_timeout_s
        self.invoke_grace_s = invoke_grace_s
        self.info_interval_s = info_interval_s
        self.region = region
        self.policy = ConsumerPolicy(ack_margin_s=ack_margin_s)
        self.backoff: Callable[[int], float] = backoff or ExponentialBackoff()
        self._pause: Callable[[int], float] = getattr(self.backoff, "pause", self.backoff)
        self.unavailable_backoff = unavailable_backoff or ExponentialBackoff(base_s=2.0, cap_s=30.0)
        self.unavailable_max_age_s = unavailable_max_age_s
        self.results_window_s = results_window_s
        self.results_join_grace_s = results_join_grace_s
        # (consumer, stream sequence) -> deliveries excused because the platform was unavailable
        self._excused: OrderedDict[tuple[str, int], int] = OrderedDict()
        self._routes = routes
        self._invoker = invoker
        self._nc: nats.NATS | None = None
        self._js: JetStreamContext | None = None
        self._runners: dict[str, _Runner] = {}
        self._stats: dict[str, ConsumerStats] = {}
        self._tasks: set[asyncio.Task] = set()
        self._stopping = asyncio.Event()
        self._lock = asyncio.Lock()
        self._refresh_task: asyncio.Task | None = None
        self.metrics = DeliveryMetrics(sink=metrics_sink, service=metrics_service)
        self.metrics_interval_s = metrics_interval_s
        self._metrics_task: asyncio.Task | None = None

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Connect, ensure the streams, apply the routes and start refreshing them.

        Raises if NATS cannot be reached or the streams cannot be ensured; a failing ``routes()`` or consumer is
        logged and retried on the next refresh.
        """
        if self._nc is not None:
            raise RuntimeError("bridge already started")
        self._stopping.clear()
        self._nc = await nats.connect(
            self.nats_url,
            name=self.name,
            max_reconnect_attempts=-1,
            reconnect_time_wait=1,
            error_cb=self._on_error,
            disconnected_cb=self._on_disconnected,
            reconnected_cb=self._on_reconnected,
        )
        self._js = self._nc.jetstream()
        await ensure_streams(self._js)
        await self.refresh()
        self._refresh_task = asyncio.create_task(self._refresh_loop(), name=f"{self.name}-refresh")
        if self.metrics_interval_s:
            self._metrics_task = asyncio.create_task(self._metrics_loop(), name=f"{self.name}-metrics")

    async def stop(self, drain_timeout_s: float = 30.0) -> None:
        """Stop fetching, finish in-flight invocations (up to ``drain_timeout_s``) and their acks, then close."""
        if self._nc is None:
            return
        self._stopping.set()
        if self._refresh_task is not None:
            self._refresh_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._refresh_task
            self._refresh_task = None
        if self._metrics_task is not None:
            self._metrics_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._metrics_task
            self._metrics_task = None
        async with self._lock:
            for runner in self._runners.values():
                for worker in runner.workers:
                    worker.retire.set()
        tasks = [t for t in self._tasks if not t.done()]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=drain_timeout_s)
            if pending:
                log.warning("%s: %d worker(s) still busy after %.1fs; cancelling", self.name, len(pending),
                            drain_timeout_s)
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
        if self.metrics_interval_s:
            with contextlib.suppress(Exception):
                self.flush_metrics()  # the last interval's figures
        for stats in self._stats.values():
            stats.workers = 0
            stats.active = False
        nc, self._nc, self._js = self._nc, None, None
        self._runners.clear()
        try:
            await nc.drain()
        except Exception:  # already closed or disconnected: nothing left to flush
            with contextlib.suppress(Exception):
                await nc.close()

    def stats(self) -> dict[str, dict]:
        """Per consumer name: counters of this replica (see :class:`~.types.ConsumerStats`), plus ``consumer_lag``
        (messages not yet delivered, JetStream ``num_pending``) and ``delivery_latency_p50_ms`` /
        ``delivery_latency_p99_ms`` (publish to acknowledgement, over the last 1,000 delivered messages)."""
        out = {}
        for name, stats in self._stats.items():
            runner = self._runners.get(name)
            stats.workers = len([w for w in runner.workers if not w.retire.is_set()]) if runner else 0
            out[name] = {**stats.as_dict(), "consumer_lag": stats.num_pending, **self.metrics.summary(name)}
        return out

    # ------------------------------------------------------------------ metrics

    def flush_metrics(self) -> list[dict]:
        """Write one EMF object per current route now (the metrics loop calls this every ``metrics_interval_s``)."""
        items = [(runner.route, self._stats[name]) for name, runner in list(self._runners.items())
                 if name in self._stats]
        return self.metrics.flush(items)

    async def _refresh_lag(self) -> None:
        js = self._js
        if js is None:
            return
        for name in list(self._runners):
            try:
                info = await js.consumer_info(STREAM, name)
            except Exception:  # keep the last known lag
                continue
            stats = self._stats.get(name)
            if stats is not None:
                stats.num_pending = info.num_pending
                stats.num_ack_pending = info.num_ack_pending

    async def _metrics_loop(self) -> None:
        while not self._stopping.is_set():
            await asyncio.sleep(self.metrics_interval_s)
            try:
                await self._refresh_lag()
                self.flush_metrics()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s: metrics flush failed", self.name)

    # ------------------------------------------------------------------ routes

    async def refresh(self) -> None:
        """Re-read the routes and apply them now (the refresh loop calls this every ``refresh_interval_s``)."""
        async with self._lock:
            if self._stopping.is_set() or self._js is None:
                return
            js = self._js
            try:
                await ensure_streams(js)
            except Exception as exc:
                log.warning("%s: could not ensure streams: %s", self.name, exc)
            try:
                routes = list(await self._routes())
            except Exception:
                log.exception("%s: reading routes failed; keeping the current %d route(s)", self.name,
                              len(self._runners))
                return
            desired: dict[str, Route] = {}
            for route in routes:
                if route.consumer_name in desired:
                    log.error("%s: duplicate route for consumer %s ignored", self.name, route.consumer_name)
                    continue
                desired[route.consumer_name] = route
            for name in [n for n in self._runners if n not in desired]:
                runner = self._runners.pop(name)
                log.info("%s: route %s removed; stopping its workers (consumer kept)", self.name, name)
                for worker in runner.workers:
                    worker.retire.set()
                self._stats[name].active = False
            for route in desired.values():
                if self._stopping.is_set():
                    return
                await self._apply(js, route)

    async def _apply(self, js: JetStreamContext, route: Route) -> None:
        name = route.consumer_name
        runner = self._runners.get(name)
        stats = self._stats.get(name)
        if stats is None:
            stats = self._stats[name] = ConsumerStats(consumer=name, function_name=route.function_name)
        if runner is None:
            runner = self._runners[name] = _Runner(route=route)
            stats.active = True
        stale = runner.ensured_at is None or time.monotonic() - runner.ensured_at >= self.info_interval_s
        if runner.route != route or runner.needs_ensure or stale:
            try:
                info = await ensure_consumer(js, route, self.policy)
            except Exception as exc:
                runner.needs_ensure = True
                stats.consumer_error = clip(f"{type(exc).__name__}: {exc}")
                log.error("%s: consumer %s not created/updated: %s", self.name, name, exc)
                if not runner.workers:
                    return  # nothing to run yet; retried on the next refresh
            else:
                runner.route = route
                runner.needs_ensure = False
                runner.ensured_at = time.monotonic()
                stats.consumer_error = None
                stats.function_name = route.function_name
                stats.num_pending = info.num_pending
                stats.num_ack_pending = info.num_ack_pending
        self._scale(runner, runner.route.max_concurrency)

    def _scale(self, runner: _Runner, count: int) -> None:
        runner.workers = [w for w in runner.workers if not w.retire.is_set() and not (w.task and w.task.done())]
        while len(runner.workers) > count:
            runner.workers.pop().retire.set()
        while len(runner.workers) < count and not self._stopping.is_set():
            worker = _Worker()
            worker.task = asyncio.create_task(self._work(runner, worker),
                                              name=f"{self.name}-{runner.route.consumer_name}")
            self._tasks.add(worker.task)
            worker.task.add_done_callback(self._tasks.discard)
            runner.workers.append(worker)

    async def _refresh_loop(self) -> None:
        while not self._stopping.is_set():
            await asyncio.sleep(self.refresh_interval_s)
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s: refresh failed", self.name)

    # ------------------------------------------------------------------ workers

    async def _work(self, runner: _Runner, worker: _Worker) -> None:
        name = runner.route.consumer_name
        stats = self._stats[name]
        sub = None
        try:
            while not worker.retire.is_set():
                js = self._js
                if js is None:
                    return
                if sub is None:
                    try:
                        sub = await js.pull_subscribe_bind(consumer=name, stream=STREAM)
                    except Exception as exc:
                        stats.last_error = clip(f"subscribe: {exc}")
                        await self._sleep(worker, 1.0)
                        continue
                wait = runner.throttled_until - time.monotonic()
                if wait > 0 and await self._sleep(worker, wait):
                    break
                route = runner.route
                fetch_started = time.monotonic()
                try:
                    msgs = await fetch_ready(sub, route.batch_size, timeout_s=self.fetch_timeout_s)
                except TimeoutError:  # nats.errors.TimeoutError / FetchTimeoutError: nothing to do
                    # A pull answered at once with a status (409 max ack pending / consumer deleted, 404 with
                    # batch=1) surfaces as a timeout too: do not spin on it.
                    if time.monotonic() - fetch_started < self.fetch_timeout_s / 2:
                        await self._sleep(worker, min(0.5, self.fetch_timeout_s))
                    continue
                except Exception as exc:
                    stats.last_error = clip(f"fetch: {type(exc).__name__}: {exc}")
                    log.warning("%s: fetch from %s failed: %s", self.name, name, exc)
                    runner.needs_ensure = True
                    await self._sleep(worker, 1.0)
                    continue
                if not msgs:
                    continue
                if worker.retire.is_set():
                    await self._release(msgs)
                    break
                await self._process_in_turn(runner, route, msgs, stats)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s: worker of %s crashed", self.name, name)
            stats.last_error = "worker crashed (see log)"
            runner.needs_ensure = True  # the next refresh replaces it (_scale drops finished workers)
        finally:
            if sub is not None:
                with contextlib.suppress(Exception):
                    await sub.unsubscribe()

    @staticmethod
    async def _sleep(worker: _Worker, seconds: float) -> bool:
        """Sleep up to ``seconds``; True if the worker was told to stop meanwhile."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(worker.retire.wait(), timeout=max(seconds, 0.0))
        return worker.retire.is_set()

    async def _release(self, msgs: Iterable[Msg]) -> None:
        """Hand messages fetched during a stop back to JetStream at once (another replica takes them)."""
        for msg in msgs:
            with contextlib.suppress(Exception):
                await msg.nak()

    async def _keepalive(self, msgs: list[Msg], interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            for msg in msgs:
                with contextlib.suppress(Exception):
                    await msg.in_progress()

    async def _process_in_turn(self, runner: _Runner, route: Route, msgs: list[Msg], stats: ConsumerStats) -> None:
        """:meth:`_process` once no other worker of the route is delivering a result of the same goal (see the module
        docstring); the batch's own groups are held until its invocation ended."""
        msg_groups = [result_group(msg) for msg in msgs]
        groups = {group for group in msg_groups if group is not None}
        if groups and None not in msg_groups and self._join_open_batch(runner, msgs, groups):
            return  # the open batch's invocation delivers and settles them
        while groups:
            busy = [runner.delivering[g] for g in groups if g in runner.delivering]
            if not busy:
                break
            await asyncio.wait(busy)
        done = asyncio.get_running_loop().create_future()
        for group in groups:  # no await between the check above and this: no other worker can slip in between
            runner.delivering[group] = done
        try:
            if groups and self.results_window_s > 0 and len(msgs) < route.batch_size \
                    and route.platform_tenant_id != PLATFORM_CONSUMER_TENANT:
                msgs = await self._collect_results(runner, route, msgs, groups)
            await self._process(runner, route, msgs, stats)
        finally:
            for group in groups:
                if runner.delivering.get(group) is done:
                    del runner.delivering[group]
            done.set_result(None)

    @staticmethod
    def _join_open_batch(runner: _Runner, msgs: list[Msg], groups: set[str]) -> bool:
        """Add ``msgs`` (results of ``groups`` only) to the batch of the same route still open for those goals, when
        one is and it has room; ``True`` when they were handed over."""
        open_batches = {id(batch): batch for g in groups if (batch := runner.collecting.get(g)) is not None}
        if len(open_batches) != 1:
            return False
        [batch] = open_batches.values()
        if not groups <= batch.groups or len(batch.msgs) + len(msgs) > batch.limit:
            return False
        batch.msgs.extend(msgs)
        batch.joined.set()
        return True

    async def _collect_results(self, runner: _Runner, route: Route, msgs: list[Msg], groups: set[str]) -> list[Msg]:
        """Keep the batch open for ``results_window_s``, or ``results_join_grace_s`` after the latest result that
        joined it if that is sooner (see the module docstring); returns it with what other workers added."""
        batch = _OpenBatch(list(msgs), set(groups), route.batch_size)
        for group in groups:
            runner.collecting[group] = batch
        loop = asyncio.get_running_loop()
        window_ends = closes_at = loop.time() + self.results_window_s
        try:
            while (left := closes_at - loop.time()) > 0:
                try:
                    await asyncio.wait_for(batch.joined.wait(), timeout=left)
                except TimeoutError:
                    break
                batch.joined.clear()
                if len(batch.msgs) >= batch.limit:
                    break  # full: nothing more can join
                closes_at = min(window_ends, loop.time() + self.results_join_grace_s)
        finally:
            for group in groups:
                if runner.collecting.get(group) is batch:
                    del runner.collecting[group]
        return batch.msgs

    async def _process(self, runner: _Runner, route: Route, msgs: list[Msg], stats: ConsumerStats) -> None:
        name = route.consumer_name
        count = len(msgs)
        stats.delivered += count
        stats.in_flight += count
        try:
            now_ms = int(time.time() * 1000)
            records: list[dict] = []
            batch: dict[str, Msg] = {}
            for msg in msgs:
                target = msg.headers.get(H_REPLAY_CONSUMER) if msg.headers else None
                if target is not None and target != route.consumer_name:
                    with contextlib.suppress(Exception):  # a replay meant for another consumer: not ours
                        await msg.ack()
                    stats.extra["replays_skipped"] = stats.extra.get("replays_skipped", 0) + 1
                    continue
                try:
                    body = msg.data.decode("utf-8")
                except UnicodeDecodeError:
                    await self._fail(msg, route, "message body is not valid UTF-8", stats, dead_letter_now=True)
                    continue
                record = build_record(msg, body, sender=self.name, region=self.region, now_ms=now_ms)
                records.append(record)
                batch[record["messageId"]] = msg
            stats.num_pending = msgs[-1].metadata.num_pending
            if not records:
                return
            keepalive = asyncio.create_task(self._keepalive(list(batch.values()), self.policy.ack_wait(route) / 2))
            started = time.monotonic()
            throttled: FunctionThrottled | None = None
            outcome: Outcome
            try:
                result = await asyncio.wait_for(
                    self._invoker.invoke(route.function_name, build_payload(records)),
                    timeout=route.timeout_s + self.invoke_grace_s,
                )
                outcome = interpret(result, list(batch))
            except FunctionThrottled as exc:
                throttled = exc
            except TimeoutError:
                outcome = Outcome(None, f"invocation timed out after {route.timeout_s + self.invoke_grace_s:g}s")
            except Exception as exc:
                outcome = Outcome(None, clip(f"invocation failed: {type(exc).__name__}: {exc}"))
            finally:
                keepalive.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await keepalive
            stats.invocations += 1
            stats.last_latency_ms = round((time.monotonic() - started) * 1000, 3)
            if throttled is not None:
                await self._throttle(runner, list(batch.values()), throttled, stats)
                return
            runner.throttle_streak = 0
            if outcome.all_failed:
                stats.failed_invocations += 1
            record_latency = self.metrics.record_latency
            for message_id, msg in batch.items():
                if outcome.failed is not None and message_id not in outcome.failed:
                    try:
                        await msg.ack()
                        if self._excused:
                            self._excused.pop((name, msg.metadata.sequence.stream), None)
                        stats.succeeded += 1
                        record_latency(name, (time.time() - msg.metadata.timestamp.timestamp()) * 1000)
                    except Exception as exc:
                        stats.last_error = clip(f"ack: {exc}")
                elif message_id in outcome.retry_later:  # the platform could not serve it now
                    await self._retry_later(msg, route, outcome.retry_later[message_id], outcome.error or "", stats)
                elif message_id in outcome.terminal:  # the function says no redelivery can fix it
                    await self._fail(msg, route, outcome.terminal[message_id], stats, dead_letter_now=True)
                    stats.extra["terminal_failures"] = stats.extra.get("terminal_failures", 0) + 1
                else:
                    await self._fail(msg, route, outcome.error or "failed", stats)
            oldest = min(m.metadata.timestamp.timestamp() for m in batch.values())
            stats.last_end_to_end_ms = round((time.time() - oldest) * 1000, 3)
        finally:
            stats.in_flight -= count

    async def _retry_later(self, msg: Msg, route: Route, seconds: float, error: str, stats: ConsumerStats) -> None:
        """Redeliver a message the platform could not serve now, without counting the delivery (module docstring)."""
        key = (route.consumer_name, msg.metadata.sequence.stream)
        age = time.time() - msg.metadata.timestamp.timestamp()
        if age > self.unavailable_max_age_s:
            await self._fail(msg, route, f"{error} (still unavailable after {age:.0f} s)", stats)
            return
        excused = self._excused.pop(key, 0) + 1
        self._excused[key] = excused
        while len(self._excused) > EXCUSED_MAX_ENTRIES:
            self._excused.popitem(last=False)
        stats.last_error = error
        try:
            await msg.nak(delay=max(seconds, self.unavailable_backoff.pause(excused)))
            stats.extra["retried_unavailable"] = stats.extra.get("retried_unavailable", 0) + 1
        except Exception as exc:  # connection trouble: the ack wait will bring the message back
            stats.last_error = clip(f"settle: {exc}")

    async def _fail(self, msg: Msg, route: Route, error: str, stats: ConsumerStats, *,
                    dead_letter_now: bool = False) -> None:
        """Retry a failed message later, or dead-letter it once it has used up its deliveries (deliveries excused
        by :meth:`_retry_later` not counted)."""
        stats.last_error = error
        key = (route.consumer_name, msg.metadata.sequence.stream)
        attempt = max(1, msg.metadata.num_delivered - self._excused.get(key, 0))
        try:
            if dead_letter_now or attempt >= route.max_deliveries:
                js = self._js
                try:
                    if js is None:
                        raise RuntimeError("bridge is closed")
                    await dead_letter(js, msg, route, error)
                except Exception as exc:
                    log.error("%s: dead-lettering %s seq %s failed: %s; retrying it later", self.name,
                              route.consumer_name, msg.metadata.sequence.stream, exc)
                    stats.last_error = clip(f"dead letter failed: {exc}")
                    await msg.nak(delay=self.backoff(attempt))
                    stats.retried += 1
                    return
                await msg.term()
                self._excused.pop(key, None)
                stats.dead_lettered += 1
                log.warning("%s: %s seq %s dead-lettered after %d deliveries: %s", self.name, route.consumer_name,
                            msg.metadata.sequence.stream, attempt, error, extra=_log_fields(route, msg))
            else:
                await msg.nak(delay=self.backoff(attempt))
                stats.retried += 1
        except Exception as exc:  # connection trouble: the ack wait will bring the message back
            stats.last_error = clip(f"settle: {exc}")

    async def _throttle(self, runner: _Runner, msgs: list[Msg], exc: FunctionThrottled,
                        stats: ConsumerStats) -> None:
        runner.throttle_streak += 1
        pause = max(self._pause(runner.throttle_streak), exc.retry_after_s or 0.0)
        runner.throttled_until = max(runner.throttled_until, time.monotonic() + pause)
        stats.last_error = clip(f"throttled: {exc}")
        log.info("%s: %s throttled (streak %d); pausing %.2fs", self.name, runner.route.consumer_name,
                 runner.throttle_streak, pause)
        for msg in msgs:
            with contextlib.suppress(Exception):
                await msg.nak(delay=pause)
                stats.throttled += 1

    # ------------------------------------------------------------------ connection callbacks

    async def _on_error(self, exc: Exception) -> None:
        log.warning("%s: NATS error: %s", self.name, exc)

    async def _on_disconnected(self) -> None:
        if not self._stopping.is_set():
            log.warning("%s: disconnected from NATS", self.name)

    async def _on_reconnected(self) -> None:
        log.info("%s: reconnected to NATS", self.name)


def _log_fields(route: Route, msg: Msg) -> dict[str, Any]:
    """The structured-log fields of a record about one message (:func:`soorma.telemetry.structured_logging`):
    ``agent``, ``consumer``, ``tenant`` and, when the body is an envelope, ``event_id``, ``event_type``, ``goal_id``,
    ``trace_id``. Only for the rare records (a dead letter): the body is parsed again for them."""
    fields: dict[str, Any] = {"agent": route.agent, "consumer": route.consumer_name,
                              "tenant": route.platform_tenant_id}
    try:
        body = json.loads(msg.data)
    except (TypeError, ValueError):
        return fields
    if isinstance(body, dict):
        for key, name in (("id", "event_id"), ("type", "event_type"), ("goal_id", "goal_id"), ("trace_id", "trace_id")):
            if isinstance(body.get(key), str):
                fields[name] = body[key]
    return fields
