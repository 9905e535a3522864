"""Wake-ups over the bus (RabbitMQ, doc/bus.rst) against the store's sweep: how soon work
starts, how engines scale, and what the offers cost the store.

    python benchmarks/wakeups.py [--json] [--quick] [--sqlite-only]

1. Latency from a command's 202 to its workflow's first task starting, by cast and by sweep.
   The command is recorded as the API records one (an append through the API's announcing
   store, ``rpc/announce.py``; its 202 leaves once that append returns); the engines' handoff
   starts the workflow it asks for (one task) and an engine runs it; the start is the task's
   ``TaskStarted`` time; one command every 0.25 s. By cast: the API's store and two engines
   on RabbitMQ, the sweep at its bus default ([bus] sweep_interval, 2 s); by sweep: nothing
   cast, the handoff's poll and the engines' sweep at [engine] sweep_interval (0.2 s), as
   before the bus. Goal: p99 below 50 ms by cast. The API side and the engines are in this
   process, each with a store object and a connection to RabbitMQ of its own, the
   interpreter set up as in their own processes (``cli/interpreter.py``). 200 samples (20
   with --quick): p99 is interpolated between the 198th and 199th; the slowest is printed
   beside it, and so is the CPU time the hypervisor took meanwhile (``*_cpu_steal``).
2. Engine scaling on Cassandra: ``--tasks`` tasks (default 400) that each wait 200 ms (I/O),
   in 8 workflows, on 1, 2 and 4 ``sahara-es engine`` processes on the bus, each running at
   most ``--concurrency`` (8) at once (``--project-share 1.0``: the benchmark's workflows are
   one project's, which may use every slot). The workflows are started as the handoff starts them
   (each cast to one engine); engines with spare slots claim the tasks the owners offer. Each
   engine count runs 3 times on the same engines (the median is the figure; runs on two
   shared cores vary by up to 2x). Goal: at least 3.5x faster on 4 engines than on 1.
3. Store requests per task, before and after task offers moved to the bus: two engines in this
   process, each on a store object of its own that counts every request, run the same
   workflows; before, engines find offers by reading the workflow streams of the others and
   owners read their offers' claim streams every 100 ms; after, offers and claims are cast.

``run(quick=..., backends=...)`` returns every figure as one dict (benchmarks/services.py
merges them); each part is a function returning its own dict too. Needs RabbitMQ
(``tools/rabbitmq start``; started if it is not running) and, unless --sqlite-only, the
Cassandra node.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import Steal, output, print_notes, scenario_parser, wide_console
from sahara_es.cli import interpreter
from sahara_es.engine import Engine, EngineConfig, WorkflowRequest, start_workflow, wait_for
from sahara_es.engine.engine import WORKFLOW_PREFIX
from sahara_es.engine.handoff import Rules
from sahara_es.engine.state import WorkflowStatus
from sahara_es.engine.wakeups import Listener, attach, detach
from sahara_es.events import DomainEvent, Metadata, RecordedEvent, registry
from sahara_es.events import workflow as ev
from sahara_es.rpc.announce import announcing
from sahara_es.rpc.bus import RabbitWakeups, transport_for
from sahara_es.rpc.settings import BusSettings
from sahara_es.store import Store, open_store
from tests.engines import engine_alive, wait_until
from tests.factories import CASSANDRA_HOST, CountingStore, drop_cassandra_keyspace
from tests.rabbitmq import (
    ENGINE_RUNNING,
    broker_url,
    bus_config,
    engine_process,
    messaging_conf,
)

KEYSPACE = "sahara_es_bench_wakeups"  # dropped at each start: nothing left from before
CASSANDRA_URL = f"cassandra://{CASSANDRA_HOST}:9042/{KEYSPACE}"
BACKENDS = ("sqlite", "cassandra")
COMMAND_INTERVAL = 0.25
"""Seconds between two commands of the latency part: each finds the engines done with the
one before (its workflow finished, its lease deleted), as commands arriving a few a second
do."""


@registry.event("WakeupBenchmarkRequested")
@dataclass(frozen=True)
class Requested(DomainEvent):
    """What the benchmark's command records: one workflow asked for."""

    workflow_id: str


def _one_task(store: Store, event: RecordedEvent) -> Iterator[WorkflowRequest]:
    yield WorkflowRequest("test.noops", {"tasks": 1, "shape": "parallel",
                                         "idempotent": True}, str(event.data["workflow_id"]))


RULES: Rules = {"WakeupBenchmarkRequested": _one_task}


class Silent:
    """Wake-ups that reach nobody: engines find everything by sweeping, as before the bus."""

    remote = False
    carries_offers = False

    def subscribe(self, listener: Listener) -> None: ...
    def unsubscribe(self, listener: Listener) -> None: ...
    def workflow_ready(self, workflow_id: str) -> None: ...
    def wake_all(self) -> None: ...
    def tasks_offered(self, workflow_id: str, owner: str, engine_id: str | None = None,
                      task_ids: Sequence[str] = ()) -> None: ...
    def claim_moved(self, owner: str, workflow_id: str, stream_id: str) -> None: ...
    def cancel_requested(self, workflow_id: str) -> None: ...
    def requests_recorded(self, stream_id: str | None = None, from_version: int = 0,
                          to_version: int = 0) -> None: ...
    def capacity(self, engine_id: str, free: int) -> None: ...


def percentile(values: list[float], fraction: float) -> float:
    """The ``fraction`` quantile, interpolated between the samples around it (as
    ``benchmarks/api.py``'s): with 200 samples, p99 lies between the 198th and 199th."""
    if len(values) < 2:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(fraction * 100) - 1]


def _bus(topic: str) -> RabbitWakeups:
    transport = transport_for(messaging_conf(broker_url()))
    assert transport is not None
    return RabbitWakeups(transport, BusSettings(topic=topic))


def _first_start(store: Store, workflow_id: str, timeout: float = 30.0) -> float:
    """When the workflow's first task started (its TaskStarted's time, recorded by the
    engine: how often this looks changes only when it finds it, so it looks every 50 ms
    rather than load the store and the engines' process it measures)."""
    stream = f"{WORKFLOW_PREFIX}{workflow_id}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for event in store.read(stream):
            if event.type == ev.TaskStarted.event_type:
                return event.metadata.occurred_at.timestamp()
        time.sleep(0.05)
    raise TimeoutError(f"{workflow_id} did not start within {timeout} s")


# -- 1. from the 202 to the first task -------------------------------------------------------

def start_latencies(url: str, *, by_cast: bool, samples: int) -> list[float]:
    """Milliseconds from each command's record to its workflow's first task starting."""
    import tests.workflows  # noqa: F401 - registers test.noops

    topic = f"sahara-es-bench-{uuid.uuid4().hex[:8]}"
    api_side = open_store(url, upgrade=True)
    engine_side = open_store(url)
    buses: list[RabbitWakeups] = []
    if by_cast:
        buses = [_bus(topic), _bus(topic)]
        api_store = announcing(api_side, buses[0], RULES.keys())
        attach(engine_side, buses[1])
    else:
        api_store = api_side
        attach(engine_side, Silent())
    engines = [Engine(engine_side, EngineConfig(engine_id=f"latency-{i}-{uuid.uuid4().hex[:6]}",
                                                concurrency=4, lease_ttl=5.0),
                      handoff=RULES).start() for i in range(2)]
    latencies: list[float] = []
    # this process stands for the API's and the engines': it sets the interpreter up as
    # sahara-es api and sahara-es engine do once started (cli/interpreter.py)
    switch = sys.getswitchinterval()
    interpreter.settle()
    try:
        time.sleep(1.0)  # the engines' servers listen, the handoff holds its lease
        began = time.monotonic()
        for sample in range(samples):
            # one command every COMMAND_INTERVAL (or at once, when the last took longer)
            time.sleep(max(0.0, began + sample * COMMAND_INTERVAL - time.monotonic()))
            workflow_id = uuid.uuid4().hex
            api_store.append(f"wakeupbench-{workflow_id}", [registry.new_event(
                Requested(workflow_id), Metadata(actor="bench", project_id="bench"))], 0)
            answered = time.time()  # the 202
            latencies.append((_first_start(api_side, workflow_id) - answered) * 1000)
            wait_for(api_side, workflow_id, timeout=30, poll=0.05)
    finally:
        sys.setswitchinterval(switch)
        gc.unfreeze()
        for engine in engines:
            engine.stop(grace=5)
        for bus in buses:
            bus.close()
        api_side.close()
        engine_side.close()
    return latencies


def latency_figures(backend: str, url: str, samples: int) -> dict[str, float]:
    figures: dict[str, float] = {}
    for way, by_cast in (("cast", True), ("sweep", False)):
        with Steal() as steal:
            found = start_latencies(url, by_cast=by_cast, samples=samples)
        figures[f"{backend}.{way}_to_start_cpu_steal"] = steal.fraction
        figures[f"{backend}.{way}_to_start_p50_ms"] = statistics.median(found)
        figures[f"{backend}.{way}_to_start_p99_ms"] = percentile(found, 0.99)
        figures[f"{backend}.{way}_to_start_max_ms"] = max(found)
    figures[f"{backend}.latency_samples"] = float(samples)
    return figures


# -- 2. scaling over engine processes -------------------------------------------------------

def scaling_figures(backend: str, url: str, folder: Path, *, tasks: int, seconds: float,
                    concurrency: int, counts: tuple[int, ...] = (1, 2, 4),
                    workflows: int = 8, repeats: int = 1) -> dict[str, float]:
    """``tasks`` tasks of ``seconds`` each in ``workflows`` workflows, on ``counts`` engine
    processes on the bus; seconds to finish them all (the median of ``repeats`` runs on the
    same engines, beside the fastest and slowest) and the speedup over one engine."""
    import tests.workflows  # noqa: F401 - registers test.sleeps

    store = open_store(url, upgrade=True)
    transport = broker_url()
    figures: dict[str, float] = {}
    try:
        for count in counts:
            tag = f"{count}-{uuid.uuid4().hex[:6]}"
            config = bus_config(folder, tag)
            names = [f"scale-{tag}-{i}" for i in range(count)]
            # this process starts the workflows as a handoff would: each is cast to one engine
            bus = _bus(f"sahara-es-engine-{tag}")
            attach(store, bus)
            with contextlib.ExitStack() as stack:
                stack.callback(bus.close)
                stack.callback(detach, store)
                processes = [stack.enter_context(engine_process(
                    name, config, url, transport, folder, "--concurrency", str(concurrency),
                    "--project-share", "1.0", "--nice", "0")) for name in names]
                wait_until(lambda ns=names: all(engine_alive(store, n) for n in ns),  # type: ignore[misc]
                           timeout=120)
                # and listening: a cast made before an engine's queues exist reaches nobody
                wait_until(lambda ps=processes: all(p.said(ENGINE_RUNNING) for p in ps),  # type: ignore[misc]
                           timeout=120)
                runs: list[float] = []
                for _ in range(repeats):  # the same engines, new workflows each time
                    started = time.perf_counter()
                    with ThreadPoolExecutor(workflows) as starting:  # commands at once
                        ids = list(starting.map(lambda _: start_workflow(
                            store, "test.sleeps", {"tasks": tasks // workflows,
                                                   "seconds": seconds}), range(workflows)))
                    states = [wait_for(store, w, timeout=900, poll=0.05) for w in ids]
                    runs.append(time.perf_counter() - started)
                    assert all(s.status is WorkflowStatus.SUCCEEDED for s in states)
                figures[f"{backend}.scaling.{count}_engines.seconds"] = statistics.median(runs)
                figures[f"{backend}.scaling.{count}_engines.seconds_min"] = min(runs)
                figures[f"{backend}.scaling.{count}_engines.seconds_max"] = max(runs)
                ran_by = Counter(t.engine for s in states for t in s.tasks.values())
                figures[f"{backend}.scaling.{count}_engines.engines_used"] = float(len(ran_by))
                figures[f"{backend}.scaling.{count}_engines.most_tasks_on_one"] = float(
                    max(ran_by.values()))
                figures[f"{backend}.scaling.{count}_engines.most_workflows_on_one"] = float(
                    max(Counter(s.owner for s in states).values()))
        one = figures[f"{backend}.scaling.{counts[0]}_engines.seconds"]
        for count in counts[1:]:
            figures[f"{backend}.scaling.speedup.{count}_over_{counts[0]}"] = (
                one / figures[f"{backend}.scaling.{count}_engines.seconds"])
        figures[f"{backend}.scaling.tasks"] = float(tasks)
        figures[f"{backend}.scaling.task_seconds"] = seconds
        figures[f"{backend}.scaling.concurrency_per_engine"] = float(concurrency)
    finally:
        store.close()
    return figures


# -- 3. store requests per task, offers read from the store or cast -------------------------

def requests_per_task(url: str, *, on_bus: bool, tasks: int, seconds: float,
                      workflows: int = 2) -> dict[str, float]:
    """Two engines, each on a counting store object of its own (as if in two processes):
    store requests per task, overall and by kind."""
    import tests.workflows  # noqa: F401

    real = open_store(url, upgrade=True)
    counting = [CountingStore(open_store(url)) for _ in range(2)]
    buses: list[RabbitWakeups] = []
    topic = f"sahara-es-bench-{uuid.uuid4().hex[:8]}"
    for store in counting:
        if on_bus:
            buses.append(_bus(topic))
            attach(cast(Store, store), buses[-1])
        else:
            attach(cast(Store, store), Silent())
    engines = [Engine(cast(Store, store), EngineConfig(
        engine_id=f"requests-{i}-{uuid.uuid4().hex[:6]}", concurrency=4, lease_ttl=5.0,
        project_share=1.0)).start() for i, store in enumerate(counting)]
    try:
        time.sleep(1.0)
        before = [store.calls() for store in counting]
        ids = [start_workflow(real, "test.sleeps", {"tasks": tasks // workflows,
                                                    "seconds": seconds})
               for _ in range(workflows)]
        states = [wait_for(real, w, timeout=600, poll=0.05) for w in ids]
        assert all(s.status is WorkflowStatus.SUCCEEDED for s in states)
        totals: Counter[str] = Counter()
        for store, counted in zip(counting, before, strict=True):
            totals.update(store.calls() - counted)
    finally:
        for engine in engines:
            engine.stop(grace=5)
        for bus in buses:
            bus.close()
        for store in counting:
            store.close()
        real.close()
    reads = totals["read"] + totals["stream_version"]
    return {"requests_per_task": sum(totals.values()) / tasks,
            "reads_per_task": reads / tasks,
            "appends_per_task": totals["append"] / tasks,
            "lease_requests_per_task": sum(n for k, n in totals.items() if "lease" in k) / tasks}


def request_figures(backend: str, url: str, *, tasks: int, seconds: float
                    ) -> dict[str, float]:
    figures: dict[str, float] = {}
    for phase, on_bus in (("before", False), ("after", True)):
        for key, value in requests_per_task(url, on_bus=on_bus, tasks=tasks,
                                            seconds=seconds).items():
            figures[f"{backend}.store_{key}.{phase}"] = value
    figures[f"{backend}.store_requests.tasks"] = float(tasks)
    return figures


# -- all of it --------------------------------------------------------------------------------

@contextlib.contextmanager
def _fresh(backend: str, folder: Path) -> Iterator[str]:
    if backend == "cassandra":
        drop_cassandra_keyspace(KEYSPACE)
        yield CASSANDRA_URL
    else:
        yield f"sqlite:///{folder}/wakeups-{uuid.uuid4().hex[:6]}.db"


def run(quick: bool = False, backends: list[str] | tuple[str, ...] = BACKENDS,
        tasks: int = 400, concurrency: int = 8) -> dict[str, Any]:
    """Every figure of this benchmark, as one dict of stable keys (see the module's doc)."""
    samples = 20 if quick else 200
    scale_tasks = 80 if quick else tasks
    count_tasks = 40 if quick else 200
    figures: dict[str, Any] = {"quick": quick}
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        for backend in backends:
            with _fresh(backend, folder) as url:
                figures.update(latency_figures(backend, url, samples))
            with _fresh(backend, folder) as url:
                figures.update(request_figures(backend, url, tasks=count_tasks, seconds=0.2))
        if "cassandra" in backends:
            with _fresh("cassandra", folder) as url:
                figures.update(scaling_figures("cassandra", url, folder, tasks=scale_tasks,
                                               seconds=0.2, concurrency=concurrency,
                                               counts=(1, 2) if quick else (1, 2, 4),
                                               repeats=1 if quick else 3))
    main_store = "cassandra" if "cassandra" in backends else backends[0]
    figures["latency_store"] = main_store
    for way in ("cast", "sweep"):
        figures[f"{way}_to_start_p99_ms"] = figures[f"{main_store}.{way}_to_start_p99_ms"]
    return figures


def show(figures: dict[str, Any]) -> None:
    from rich.table import Table

    console = wide_console()
    table = Table(title="Wake-ups: by cast (RabbitMQ) and by sweep")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key in sorted(figures):
        value = figures[key]
        table.add_row(key, f"{value:,.2f}" if isinstance(value, float) else str(value))
    console.print(table)
    print_notes(console, [
        "goals: cast_to_start_p99_ms < 50; cassandra.scaling.speedup.4_over_1 >= 3.5;"
        " store requests per task lower after offers moved to the bus",
        "*_cpu_steal: the part of the machine's CPU time the hypervisor gave to others"
        " while the latencies were measured (they lengthen with it)"])


def main() -> None:
    parser = scenario_parser(__doc__ or "")
    parser.add_argument("--quick", action="store_true", help="few samples, 1 and 2 engines")
    parser.add_argument("--tasks", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=8)
    args: argparse.Namespace = parser.parse_args()
    backends = ["sqlite"] if args.sqlite_only else list(BACKENDS)
    figures = run(quick=args.quick, backends=backends, tasks=args.tasks,
                  concurrency=args.concurrency)
    output(figures, args.json, lambda: show(figures))


if __name__ == "__main__":
    main()
