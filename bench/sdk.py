"""Benchmark of the SDK's own costs: prints one JSON line.

- **SDK cost per event in the Lambda entry** (µs, handler excluded): a ``Worker`` with one ``on_task`` handler that
  does nothing is invoked as Lambda would (``worker(batch, lambda_context)``, SQS-shaped batches of ``--batch``
  records built by ``soorma.testing.sqs_batch``); the time per event is the whole entry (Powertools batch
  processing, envelope parsing, handler matching, per-event id cache, ``TaskContext`` construction, deferred-outbox
  flush, partial-batch response) minus the time of awaiting the no-op handler itself, measured separately. No
  network: the handler makes no platform call. Also reported for a raw ``Agent.on_event`` handler and for batches of
  one. Median (and minimum, the least disturbed by other load) of ``--rounds`` rounds. These figures are taken with
  ``SOORMA_IDEMPOTENCY=local`` (the per-environment id cache only).
- **the same with platform idempotency** (``sdk_us_per_event_worker_platform_idempotency``): the Worker with
  ``SOORMA_IDEMPOTENCY=platform``, i.e. Powertools' ``idempotent_function`` on ``PlatformPersistenceLayer`` around
  every record, the store answered in process by ``soorma.testing.idempotency.FakeIdempotencyStore``: the client side
  of its two round trips per event (PUT, PATCH: request building, JSON, Powertools' hashing and records) is included,
  the network and the memory function's own time are not (add one memory round trip, ~a few ms through the gateway,
  twice, for the wall time per new event).
- **cold import of a Worker module** (ms): a fresh interpreter (``python -X frozen_modules=on``, the venv's) imports
  a module defining a Worker with two handlers (what Lambda's init phase does with the handler module); the import
  is timed inside the interpreter (interpreter start-up excluded, reported separately as ``interpreter_ms``).
  Median of ``--cold`` interpreters; ``pydantic_import_*`` is pydantic alone (a core dependency) in the same kind of
  fresh interpreter, ``sdk_own_import_cpu_ms`` the difference; ``worker_import_cpu_ms`` is the CPU time of the import (less sensitive to other
  load on the machine than the wall time). ``first_event_ms`` is the first invocation in that fresh interpreter (it loads
  what the import deferred: Powertools' batch utility, and asyncio's loop), traces off; ``tracing_first_use_ms`` what
  the first traced event adds to it (OpenTelemetry's SDK imported and a tracer built, in the same interpreter).

- **the same import from the SDK layer** (``worker_import_layer_{source,bytecode}_ms``): a fresh ``python -S -B``
  with ``sys.path`` = the module's folder + the ``sdk`` layer as ``cdk deploy`` builds it (for this interpreter), as
  in Lambda. In this venv pydantic's plugin discovery (``importlib.metadata`` over every installed distribution)
  alone costs tens of milliseconds that a function, which sees only its layers, does not pay; ``source`` has no
  ``.pyc`` (every module compiled at import), ``bytecode`` is precompiled.

- **traces, logs and metrics on and off** (``tracing_us_per_event_worker_{on,off,logs_metrics_only}``,
  ``tracing_on_off_ratio``; issue 18): the Worker figure with ``SOORMA_TRACING=on`` in a Lambda function (per event a
  ``process`` and a handler span, collected, and sent to ``POST /v1/tracker/spans`` in one request per invocation,
  answered in process: the client side of that round trip is included, the network is not; JSON log formatter installed; one EMF record per batch and
  event type), with traces off but logs and metrics on, and with all of it off (``SOORMA_TRACING=off`` outside a
  function), rounds interleaved. The figures above are taken with traces off.

Targets (issue 3): < 500 µs per event and < 150 ms import; ``targets_met`` says whether this run met them. Timings
on shared machines are noisy: compare medians of one run (``load_avg`` is printed).

Usage: ``python bench/sdk.py [--events N] [--batch B] [--rounds R] [--cold C]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import httpx

from soorma import Agent, EventEnvelope, PlatformContext, Worker, runtime
from soorma.settings import Settings
from soorma.testing import sqs_batch

TARGET_US = 500.0
TARGET_IMPORT_MS = 150.0


class _LambdaContext:
    function_name = "bench"
    aws_request_id = "bench"

    def get_remaining_time_in_millis(self) -> int:
        return 300_000


def _context() -> PlatformContext:
    def refuse(request: httpx.Request) -> httpx.Response:  # the benchmark handlers make no platform call
        raise AssertionError(f"unexpected platform call {request.method} {request.url}")

    return PlatformContext(settings=Settings(api_url="http://bench.invalid", api_key="sk_bench_x"),
                           transport=httpx.MockTransport(refuse))


def _bodies(n: int, event_type: str, topic: str) -> list[str]:
    return [
        EventEnvelope(type=event_type, topic=topic, data={"i": i, "text": "x" * 64}, correlation_id=f"c-{i}",
                      response_event="bench.done", tenant_id="t", user_id="u", goal_id="g", trace_id="tr").to_json()
        for i in range(n)
    ]


def _handler_cost_us(samples: int = 20000) -> float:
    """µs to create and await the no-op handler coroutine on the runtime's loop (excluded from the SDK's cost)."""

    async def noop(task, context):
        return None

    async def loop() -> float:
        started = time.perf_counter()
        for _ in range(samples):
            await noop(None, None)
        return time.perf_counter() - started

    return runtime.run(loop()) / samples * 1e6


def per_event_us(agent: Agent, bodies: list[str], batch: int, rounds: int, reset=None) -> tuple[float, float]:
    batches = [sqs_batch(*bodies[i:i + batch]) for i in range(0, len(bodies), batch)]
    context = _LambdaContext()
    agent(sqs_batch(bodies[0]), context)  # warm: startup, imports, caches
    results = []
    for _ in range(rounds):
        agent._handled.clear()  # every round handles the events afresh
        if reset is not None:
            reset()
        started = time.perf_counter()
        for event in batches:
            response = agent(event, context)
            assert response == {"batchItemFailures": []}, response
        results.append((time.perf_counter() - started) / len(bodies) * 1e6)
    return statistics.median(results), min(results)


class _Env:
    """Environment variables set (``None``: unset) for a block, restored after it."""

    def __init__(self, **values: str | None) -> None:
        self.values, self.saved = values, {name: os.environ.get(name) for name in values}

    def __enter__(self) -> None:
        for name, value in self.values.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value

    def __exit__(self, *exc) -> None:
        for name, value in self.saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _Mode(mode: str) -> _Env:
    """``SOORMA_IDEMPOTENCY`` set for a block (the Lambda entry reads it on an agent's first invocation), traces off
    (the figures of issue 3; :func:`tracing_overhead` measures them on and off)."""
    return _Env(SOORMA_IDEMPOTENCY=mode, SOORMA_TRACING="off")


def platform_idempotency(events: int, batch: int, rounds: int, handler_us: float) -> dict:
    """The Worker figure with Powertools idempotency on the platform layer, the store served in process."""
    from soorma.testing.idempotency import FakeIdempotencyStore

    store = FakeIdempotencyStore()
    context = PlatformContext(settings=Settings(api_url="http://bench.invalid", api_key="sk_bench_x"),
                              transport=httpx.MockTransport(store.handle))
    worker = Worker("bench-worker-idem", context=context, idempotency_cache_size=events * 2)

    @worker.on_task("bench.task")
    async def task_handler(task, context):
        return None

    def reset() -> None:
        store.records.clear()
        store.calls.clear()
        worker._runtime.idempotency.clear_cache()

    n = max(events // 4, 200)
    with _Mode("platform"):
        us, us_min = per_event_us(worker, _bodies(n, "bench.task", "action-requests"), batch, rounds, reset)
    assert len(store.calls) == 2 * n, len(store.calls)  # PUT + PATCH per event: the guard really ran
    return {
        "sdk_us_per_event_worker_platform_idempotency": round(us - handler_us, 1),
        "sdk_us_per_event_worker_platform_idempotency_min": round(us_min - handler_us, 1),
        "platform_idempotency_round_trips_per_event": 2,
        "platform_idempotency_events": n,
    }


def tracing_overhead(events: int, batch: int, rounds: int, handler_us: float) -> dict:
    """The Worker's per-event cost with traces, JSON logs and EMF metrics on (``SOORMA_TRACING=on`` in a Lambda
    function: spans made, collected and sent, the send answered in process; one EMF record per batch, to a buffer)
    and off (``SOORMA_TRACING=off`` outside a function: none of it), and logs and metrics alone (traces off in a
    function), rounds of the three interleaved so that load on the machine hits them alike; envelopes carry a
    ``traceparent``."""
    import contextlib
    import io

    sent: list[int] = []

    def platform(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/tracker/spans":
            sent.append(1)
            return httpx.Response(202, json={"accepted": 1, "stored": 1})
        raise AssertionError(f"unexpected platform call {request.method} {request.url}")

    modes = {"off": _Env(SOORMA_IDEMPOTENCY="local", SOORMA_TRACING="off", AWS_LAMBDA_RUNTIME_API=None),
             "logs_metrics": _Env(SOORMA_IDEMPOTENCY="local", SOORMA_TRACING="off",
                                  AWS_LAMBDA_RUNTIME_API="bench.invalid:9001"),
             "on": _Env(SOORMA_IDEMPOTENCY="local", SOORMA_TRACING="on", AWS_LAMBDA_RUNTIME_API="bench.invalid:9001")}
    parent = f"00-{'ab' * 16}-{'cd' * 8}-01"
    bodies = [EventEnvelope.from_json(body).model_copy(update={"traceparent": parent}).to_json()
              for body in _bodies(events, "bench.task", "action-requests")]
    batches = [sqs_batch(*bodies[i:i + batch]) for i in range(0, len(bodies), batch)]
    context = _LambdaContext()
    workers = {}
    for mode in modes:
        worker = Worker(f"bench-tracing-{mode}", idempotency_cache_size=events * 2,
                        context=PlatformContext(settings=Settings(api_url="http://bench.invalid", api_key="sk_b_x"),
                                                transport=httpx.MockTransport(platform)))

        @worker.on_task("bench.task")
        async def task_handler(task, context):
            return None

        workers[mode] = worker
    times: dict[str, list[float]] = {mode: [] for mode in modes}
    emf = io.StringIO()  # the EMF records (stdout in a function): kept out of this benchmark's one JSON line
    with contextlib.redirect_stdout(emf):
        for mode, env in modes.items():  # warm: startup, imports, caches
            with env:
                workers[mode](sqs_batch(bodies[0]), context)
        for _ in range(rounds):
            for mode, env in modes.items():
                worker = workers[mode]
                worker._handled.clear()
                with env:
                    started = time.perf_counter()
                    for event in batches:
                        response = worker(event, context)
                        assert response == {"batchItemFailures": []}, response
                    times[mode].append((time.perf_counter() - started) / len(bodies) * 1e6)
    assert len(sent) == len(batches) * rounds + 1, len(sent)  # traces on: one span request per invocation
    assert '"EventLatency"' in emf.getvalue()
    figures = {mode: round(statistics.median(values) - handler_us, 1) for mode, values in times.items()}
    return {
        "tracing_us_per_event_worker_on": figures["on"],
        "tracing_us_per_event_worker_off": figures["off"],
        "tracing_us_per_event_worker_logs_metrics_only": figures["logs_metrics"],
        "tracing_on_off_ratio": round(figures["on"] / figures["off"], 2),
        "tracing_events": events,
    }


def lambda_entry(events: int, batch: int, rounds: int) -> dict:
    with _Mode("local"):
        return _lambda_entry(events, batch, rounds)


def _lambda_entry(events: int, batch: int, rounds: int) -> dict:
    worker = Worker("bench-worker", context=_context(), idempotency_cache_size=events * 2)

    @worker.on_task("bench.task")
    async def task_handler(task, context):
        return None

    agent = Agent("bench-agent", context=_context(), idempotency_cache_size=events * 2)

    @agent.on_event("bench.fact", topic="business-facts")
    async def event_handler(event, context):
        return None

    handler_us = _handler_cost_us()
    worker_us, worker_min = per_event_us(worker, _bodies(events, "bench.task", "action-requests"), batch, rounds)
    single_us, single_min = per_event_us(worker, _bodies(max(events // 5, 200), "bench.task", "action-requests"), 1,
                                         rounds)
    agent_us, agent_min = per_event_us(agent, _bodies(events, "bench.fact", "business-facts"), batch, rounds)
    return {
        "sdk_us_per_event_worker": round(worker_us - handler_us, 1),
        "sdk_us_per_event_worker_min": round(worker_min - handler_us, 1),
        "sdk_us_per_event_worker_batch1": round(single_us - handler_us, 1),
        "sdk_us_per_event_worker_batch1_min": round(single_min - handler_us, 1),
        "sdk_us_per_event_agent": round(agent_us - handler_us, 1),
        "sdk_us_per_event_agent_min": round(agent_min - handler_us, 1),
        "handler_excluded_us": round(handler_us, 2),
        "events": events,
        "batch_size": batch,
        "rounds": rounds,
    }


WORKER_MODULE = textwrap.dedent('''
    """A typical Worker module (what Lambda imports at init)."""
    from soorma import Worker
    from soorma.task_context import DelegationSpec, ResultContext, TaskContext

    worker = Worker("order-worker", description="processes orders")

    @worker.on_task("order.process")
    async def process(task: TaskContext, context):
        await task.delegate_parallel([DelegationSpec("stock.reserve", {}, "stock.reserved")])

    @worker.on_result("stock.reserved")
    async def reserved(result: ResultContext, context):
        task = await result.restore_task()
        await task.complete({"ok": True})
''')

PROBE = textwrap.dedent('''
    import json, sys, time
    started, cpu_started = time.perf_counter(), time.process_time()
    import bench_worker_module as module
    imported, cpu_imported = time.perf_counter(), time.process_time()
    from soorma.testing import sqs_batch
    from soorma import EventEnvelope
    worker = module.worker
    @worker.on_task("bench.noop")
    async def noop(task, context):
        return None
    body = EventEnvelope(type="bench.noop", topic="action-requests", data={}).to_json()
    before = time.perf_counter()
    assert worker(sqs_batch(body), None) == {"batchItemFailures": []}
    first = time.perf_counter()
    import soorma.telemetry
    soorma.telemetry._get_tracer()  # what the first traced event adds: OpenTelemetry's SDK imported, a tracer built
    tracer = time.perf_counter()
    print(json.dumps({"tracing_first_use_ms": (tracer - first) * 1000,"import_ms": (imported - started) * 1000, "import_cpu_ms": (cpu_imported - cpu_started) * 1000,
                      "first_event_ms": (first - before) * 1000,
                      "httpx_loaded": "httpx" in sys.modules, "pydantic_loaded": "pydantic" in sys.modules}))
''')


PYDANTIC_PROBE = (
    "import json, time\n"
    "w, c = time.perf_counter(), time.process_time()\n"
    "import pydantic\n"
    "from pydantic import BaseModel\n"
    "class X(BaseModel):\n"
    "    a: int\n"
    "print(json.dumps([(time.perf_counter() - w) * 1000, (time.process_time() - c) * 1000]))\n"
)


def cold_import(samples: int) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, "bench_worker_module.py").write_text(WORKER_MODULE)
        probe = Path(folder, "probe.py")
        probe.write_text(PROBE)
        # traces off: the first event would send its spans to bench.invalid (retries on a failing DNS lookup);
        # what traces add to a cold start is tracing_first_use_ms, measured apart
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "0", "SOORMA_API_URL": "http://bench.invalid",
               "SOORMA_API_KEY": "sk_bench_x", "SOORMA_TRACING": "off"}
        subprocess.run([sys.executable, str(probe)], cwd=folder, env=env, capture_output=True, check=True)  # .pyc
        imports, cpus, firsts, walls, bare, pyd_wall, pyd_cpu, tracers = [], [], [], [], [], [], [], []
        for _ in range(samples):  # the three probes interleaved, so machine load affects them alike
            started = time.perf_counter()
            out = subprocess.run([sys.executable, str(probe)], cwd=folder, env=env, capture_output=True, text=True,
                                 check=True)
            walls.append((time.perf_counter() - started) * 1000)
            figures = json.loads(out.stdout.strip().splitlines()[-1])
            imports.append(figures["import_ms"])
            cpus.append(figures["import_cpu_ms"])
            firsts.append(figures["first_event_ms"])
            tracers.append(figures["tracing_first_use_ms"])
            # pydantic alone (a core dependency, as in soorma-core): what the import costs before any SDK code
            out = subprocess.run([sys.executable, "-c", PYDANTIC_PROBE], env=env, capture_output=True, text=True,
                                 check=True)
            wall, cpu = json.loads(out.stdout)
            pyd_wall.append(wall)
            pyd_cpu.append(cpu)
            started = time.perf_counter()
            subprocess.run([sys.executable, "-c", "pass"], env=env, check=True)
            bare.append((time.perf_counter() - started) * 1000)
    return {
        "worker_import_ms": round(statistics.median(imports), 1),
        "worker_import_min_ms": round(min(imports), 1),
        "worker_import_cpu_ms": round(statistics.median(cpus), 1),
        "pydantic_import_ms": round(statistics.median(pyd_wall), 1),
        "pydantic_import_cpu_ms": round(statistics.median(pyd_cpu), 1),
        "sdk_own_import_cpu_ms": round(statistics.median(cpus) - statistics.median(pyd_cpu), 1),
        "first_event_ms": round(statistics.median(firsts), 1),
        "tracing_first_use_ms": round(statistics.median(tracers), 1),
        "process_wall_ms": round(statistics.median(walls), 1),
        "interpreter_ms": round(statistics.median(bare), 1),
        "cold_samples": samples,
    }


LAYER_PROBE = textwrap.dedent('''
    import json, sys, time
    spec = json.loads(sys.stdin.read())
    sys.path[:0] = spec["path"]
    started, cpu_started = time.perf_counter(), time.process_time()
    import bench_worker_module
    imported, cpu_imported = time.perf_counter(), time.process_time()
    leaked = [m.__file__ for m in list(sys.modules.values())
              if getattr(m, "__file__", None) and "site-packages" in m.__file__
              and not any(m.__file__.startswith(p) for p in spec["path"])]
    print(json.dumps({"import_ms": (imported - started) * 1000, "import_cpu_ms": (cpu_imported - cpu_started) * 1000,
                      "isolated": not leaked}))
''')


def layer_import(samples: int) -> dict:
    """The Worker module imported the way Lambda imports it: a fresh ``python -S -B`` whose ``sys.path`` is only the
    module's folder and the ``sdk`` layer (layers/sdk.txt plus the SDK, built by ``soorma.infra.packaging`` for this
    interpreter), so pydantic's plugin discovery scans the layer's few distributions rather than this venv's
    hundreds. ``source``: no ``.pyc`` (what a deploy without a matching CPython ships); ``bytecode``: precompiled."""
    import shutil

    from soorma.infra import packaging

    def log(message: str) -> None:
        print(message, file=sys.stderr)

    layer = packaging.build_layer(packaging.LAYERS["sdk"], target=packaging.Target.host(), log=log)
    host_bytecode, why = packaging.probe_python(sys.executable, f"{sys.version_info.major}.{sys.version_info.minor}")
    if host_bytecode is None:
        raise SystemExit(why)
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as folder:
        for variant in ("source", "bytecode"):
            root = Path(folder, variant)
            packaging.copy_into(layer, root / "layer")
            code = root / "code"
            code.mkdir()
            (code / "bench_worker_module.py").write_text(WORKER_MODULE)
            for cache in list(root.rglob("__pycache__")):
                shutil.rmtree(cache)
            if variant == "bytecode":  # as a deploy compiles (unchecked-hash), for this interpreter
                packaging.compile_tree(root, host_bytecode, log)
            spec = json.dumps({"path": [str(code), str(root / "layer" / "python")]})
            env = {"PATH": os.environ.get("PATH", ""), "SOORMA_API_URL": "http://bench.invalid",
                   "SOORMA_API_KEY": "sk_bench_x", "AWS_LAMBDA_FUNCTION_NAME": "bench"}
            walls, cpus, isolated = [], [], True
            for _ in range(samples):
                proc = subprocess.run([sys.executable, "-S", "-B", "-c", LAYER_PROBE], input=spec, env=env,
                                      capture_output=True, text=True, check=True, timeout=120)
                result = json.loads(proc.stdout.strip().splitlines()[-1])
                walls.append(result["import_ms"])
                cpus.append(result["import_cpu_ms"])
                isolated = isolated and result["isolated"]
            out[f"worker_import_layer_{variant}_ms"] = round(statistics.median(walls), 1)
            out[f"worker_import_layer_{variant}_cpu_ms"] = round(statistics.median(cpus), 1)
            out[f"worker_import_layer_{variant}_isolated"] = isolated
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--cold", type=int, default=15)
    args = parser.parse_args()
    figures = {"bench": "sdk"}
    figures.update(lambda_entry(args.events, args.batch, args.rounds))
    figures.update(platform_idempotency(args.events, args.batch, args.rounds, figures["handler_excluded_us"]))
    figures.update(tracing_overhead(args.events, args.batch, args.rounds, figures["handler_excluded_us"]))
    figures.update(cold_import(args.cold))
    figures.update(layer_import(args.cold))
    figures["targets"] = {"us_per_event": TARGET_US, "worker_import_ms": TARGET_IMPORT_MS}
    figures["targets_met"] = (figures["sdk_us_per_event_worker"] < TARGET_US
                              and figures["worker_import_ms"] < TARGET_IMPORT_MS)
    figures["python"] = platform.python_version()
    figures["cpus"] = os.cpu_count()
    figures["load_avg"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
