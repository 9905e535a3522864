"""Kill -9 the owner of a running workflow at a random point, again and again.

    python benchmarks/failover.py [--json] [--runs 100] [--sqlite-only] [--ttl 1.0]

Three engine processes run; each run starts a 10-task chain (each task sleeps 100 ms, then
writes its id to an effects file once), waits a random 0-700 ms after an engine took it, kills
that engine with SIGKILL and starts a replacement. It counts the runs that lost the workflow
(not finished successfully) or doubled or lost an effect (a line written twice, or a task
recorded as succeeded whose line is missing): both must be 0. Failover time is from the kill
to the first event the new owner wrote, against the lease TTL (goal: at most TTL + 2 s).
"""

from __future__ import annotations

import argparse
import collections
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import report
from sahara_es.engine import WorkflowStatus, start_workflow, wait_for
from sahara_es.engine.engine import events_of
from sahara_es.events import workflow as ev
from sahara_es.store import Store, open_store
from tests.engines import EngineProcess, engine_alive, wait_until
from tests.factories import CASSANDRA_HOST, drop_cassandra_keyspace
from tests.workflows import lines

FAILOVER_KEYSPACE = "sahara_es_failover"  # dropped at each start: no workflow left from before
FAILOVER_CASSANDRA_URL = f"cassandra://{CASSANDRA_HOST}:9042/{FAILOVER_KEYSPACE}"
TASKS = 10


def owned_by(store: Store, workflow: str) -> list[ev.WorkflowOwned]:
    return [e for e in events_of(store, f"workflow-{workflow}")
            if isinstance(e, ev.WorkflowOwned)]


def first_event_after(store: Store, workflow: str, owner: str) -> float:
    for event in store.read(f"workflow-{workflow}"):
        if event.type == ev.WorkflowOwned.event_type and event.data["engine"] == owner:
            return event.metadata.occurred_at.timestamp()
    raise LookupError(owner)


def run(url: str, prefix: str, runs: int, ttl: float, folder: Path) -> dict[str, float]:
    import tests.workflows  # noqa: F401 - registers the chain

    store = open_store(url, upgrade=True)
    engines: dict[str, EngineProcess] = {}

    def spawn() -> None:
        name = f"fo-{uuid.uuid4().hex[:6]}"
        engines[name] = EngineProcess(url, name, folder, lease_ttl=ttl, sweep_interval=0.1)

    for _ in range(3):
        spawn()
    lost = doubled = missing = killed_after_finish = 0
    failovers: list[float] = []
    try:
        for i in range(runs):
            wait_until(lambda: sum(engine_alive(store, n) for n in engines) >= 3, timeout=60)
            effects = str(folder / f"effects-{prefix}-{i}")
            workflow = start_workflow(store, "test.chain", {"tasks": TASKS, "effects": effects,
                                                            "sleep": 0.1})
            wait_until(lambda w=workflow: bool(owned_by(store, w)), timeout=30, poll=0.005)
            victim = owned_by(store, workflow)[0].engine
            time.sleep(random.uniform(0, 0.7))
            engines.pop(victim).kill()
            killed_at = time.time()
            spawn()
            try:
                state = wait_for(store, workflow, timeout=60, poll=0.02)
            except TimeoutError as stuck:
                print(f"run {i}: {stuck}", file=sys.stderr)
                lost += 1
                continue
            if state.status is not WorkflowStatus.SUCCEEDED:
                print(f"run {i}: {state.summary()}", file=sys.stderr)
                lost += 1
            counts = collections.Counter(lines(effects))
            doubled += any(n > 1 for n in counts.values())
            missing += any(t not in counts for t in state.tasks
                           if state.tasks[t].status.value == "succeeded")
            successors = [o.engine for o in owned_by(store, workflow) if o.engine != victim]
            if successors:
                failovers.append(first_event_after(store, workflow, successors[0]) - killed_at)
            else:
                killed_after_finish += 1
    finally:
        for engine in engines.values():
            engine.stop()
        store.close()
    return {
        f"{prefix}.runs": float(runs),
        f"{prefix}.lost_workflows": float(lost),
        f"{prefix}.doubled_effects": float(doubled),
        f"{prefix}.missing_effects": float(missing),
        f"{prefix}.kills_after_finish": float(killed_after_finish),
        f"{prefix}.lease_ttl_s": ttl,
        f"{prefix}.failover_s.median": statistics.median(failovers),
        f"{prefix}.failover_s.p95": sorted(failovers)[int(len(failovers) * 0.95) - 1],
        f"{prefix}.failover_s.max": max(failovers),
        f"{prefix}.failover_max_minus_ttl_s": max(failovers) - ttl,
    }



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--ttl", type=float, default=1.0)
    parser.add_argument("--sqlite-only", action="store_true")
    parser.add_argument("--cassandra-only", action="store_true")
    args = parser.parse_args()
    figures: dict[str, Any] = {}
    folder = Path(tempfile.mkdtemp(prefix="sahara-es-failover-"))
    if not args.cassandra_only:
        figures.update(run(f"sqlite:///{folder}/failover.db", "sqlite", args.runs, args.ttl,
                           folder))
    if not args.sqlite_only:
        drop_cassandra_keyspace(FAILOVER_KEYSPACE)
        figures.update(run(FAILOVER_CASSANDRA_URL, "cassandra", args.runs, args.ttl, folder))
    if any(v for k, v in figures.items() if k.endswith(("lost_workflows", "doubled_effects"))):
        print(f"engine logs and effects kept in {folder}", file=sys.stderr)
    else:
        shutil.rmtree(folder)
    rows = [(k, "s" if "_s" in k else "count", float(v)) for k, v in figures.items()]
    report("kill -9 at random points: lost workflows, doubled effects, failover time", rows,
           figures, args.json, ["goal: 0 lost, 0 doubled, failover <= TTL + 2 s"])


if __name__ == "__main__":
    main()
