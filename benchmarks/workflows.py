"""The workflow engine's cost per task against OpenStack TaskFlow, and its scaling over
engine processes.

    python benchmarks/workflows.py [--json] [--sqlite-only] [--tasks 200]

1. Per-task overhead: 200 no-op tasks as a linear chain and all in parallel, on TaskFlow with
   its SQLite persistence backend (serial and parallel engines) and on ours (SQLite and
   Cassandra), side by side. Ours is measured twice: with no-op tasks that are not declared
   idempotent (each start is durable before the task runs, as TaskFlow's RUNNING state is) and
   with idempotent ones (started at once; their events follow in batches).
2. Scaling: 200 independent tasks that each sleep 50 ms, on 1, 2 and 4 engine processes.

Needs ``pip install -e '.[bench]'`` (TaskFlow, SQLAlchemy) and, unless --sqlite-only, the
Cassandra node.
"""

from __future__ import annotations

import contextlib
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import arguments, report
from sahara_es.engine import Engine, EngineConfig, WorkflowStatus, start_workflow, wait_for
from sahara_es.store import Store, open_store
from tests.engines import EngineProcess, engine_alive, wait_until
from tests.factories import CASSANDRA_HOST, drop_cassandra_keyspace

WORKFLOWS_KEYSPACE = "sahara_es_workflows"  # dropped at each start: nothing left from before
WORKFLOWS_CASSANDRA_URL = f"cassandra://{CASSANDRA_HOST}:9042/{WORKFLOWS_KEYSPACE}"
SHAPES = ("linear", "parallel")


def taskflow_ms_per_task(folder: Path, tasks: int) -> dict[str, float]:
    from taskflow import engines, task
    from taskflow.patterns import linear_flow, unordered_flow
    from taskflow.persistence import backends

    class NoOp(task.Task):  # type: ignore[misc]
        def execute(self) -> None:
            return None

    backend = backends.fetch({"connection": f"sqlite:///{folder}/taskflow.db"})
    with contextlib.closing(backend.get_connection()) as connection:
        connection.upgrade()
    figures = {}
    for shape, pattern in (("linear", linear_flow.Flow), ("parallel", unordered_flow.Flow)):
        for engine in ("serial", "parallel"):
            flow = pattern(f"{shape}-{uuid.uuid4().hex}")
            flow.add(*[NoOp(name=f"t{i}") for i in range(tasks)])
            started = time.perf_counter()
            engines.run(flow, engine=engine, backend=backend)
            figures[f"taskflow.{shape}.{engine}_engine.ms_per_task"] = (
                (time.perf_counter() - started) * 1000 / tasks)
    return figures


class CountingStore:
    """Counts the appends the engine makes (the writes per task)."""

    def __init__(self, store: Store) -> None:
        self.appends = 0
        original = store.append

        def append(*args: Any, **kwargs: Any) -> int:
            self.appends += 1
            return original(*args, **kwargs)

        store.append = append  # type: ignore[method-assign]


def ours_ms_per_task(store: Store, prefix: str, tasks: int) -> dict[str, float]:
    counting = CountingStore(store)
    engine = Engine(store, EngineConfig(engine_id=f"bench-{uuid.uuid4().hex[:6]}",
                                        concurrency=8, sweep_interval=0.05)).start()
    figures = {}
    try:
        for idempotent in (False, True):
            kind = "idempotent" if idempotent else "durable_start"
            for shape in SHAPES:
                before = counting.appends
                started = time.perf_counter()
                workflow = start_workflow(store, "test.noops", {
                    "tasks": tasks, "shape": shape, "idempotent": idempotent})
                state = wait_for(store, workflow, timeout=600, poll=0.01)
                elapsed = time.perf_counter() - started
                assert state.status is WorkflowStatus.SUCCEEDED, state.summary()
                figures[f"{prefix}.{shape}.{kind}.ms_per_task"] = elapsed * 1000 / tasks
                figures[f"{prefix}.{shape}.{kind}.appends_per_task"] = (
                    (counting.appends - before) / tasks)
                figures[f"{prefix}.{shape}.{kind}.events_per_task"] = state.version / tasks
    finally:
        engine.stop()
    return figures


def scaling(url: str, prefix: str, folder: Path, tasks: int) -> dict[str, float]:
    store = open_store(url, upgrade=True)
    figures: dict[str, float] = {}
    try:
        for count in (1, 2, 4):
            names = [f"scale-{count}-{i}-{uuid.uuid4().hex[:4]}" for i in range(count)]
            engines = [EngineProcess(url, name, folder, concurrency=4, sweep_interval=0.05)
                       for name in names]
            try:
                wait_until(lambda ns=names: all(engine_alive(store, n) for n in ns), timeout=60)
                started = time.perf_counter()
                workflow = start_workflow(store, "test.sleeps", {"tasks": tasks,
                                                                 "seconds": 0.05})
                state = wait_for(store, workflow, timeout=600, poll=0.01)
                elapsed = time.perf_counter() - started
                assert state.status is WorkflowStatus.SUCCEEDED, state.summary()
                figures[f"{prefix}.scaling.{count}_engines.seconds"] = elapsed
                ran_by = {t.engine for t in state.tasks.values()}
                figures[f"{prefix}.scaling.{count}_engines.engines_used"] = float(len(ran_by))
            finally:
                for engine in engines:
                    engine.stop()
        one = figures[f"{prefix}.scaling.1_engines.seconds"]
        for count in (2, 4):
            figures[f"{prefix}.scaling.speedup.{count}_over_1"] = (
                one / figures[f"{prefix}.scaling.{count}_engines.seconds"])
    finally:
        store.close()
    return figures



def main() -> None:
    parser_args = arguments(__doc__ or "")
    tasks = parser_args.ops if parser_args.ops != 400 else 200
    figures: dict[str, Any] = {"tasks": tasks}
    import tests.workflows  # noqa: F401 - registers the benchmark's workflow types

    with tempfile.TemporaryDirectory() as folder_name:
        folder = Path(folder_name)
        figures.update(taskflow_ms_per_task(folder, tasks))
        backends = [("sqlite", f"sqlite:///{folder}/ours.db")]
        if not parser_args.sqlite_only:
            drop_cassandra_keyspace(WORKFLOWS_KEYSPACE)
            backends.append(("cassandra", WORKFLOWS_CASSANDRA_URL))
        for prefix, url in backends:
            store = open_store(url, upgrade=True)
            figures.update(ours_ms_per_task(store, prefix, tasks))
            store.close()
        for prefix, url in backends:
            figures.update(scaling(url, prefix, folder, tasks))
    taskflow = {shape: statistics.mean(
        figures[f"taskflow.{shape}.{e}_engine.ms_per_task"] for e in ("serial", "parallel"))
        for shape in SHAPES}
    for prefix, _ in backends:
        for shape in SHAPES:
            for kind in ("durable_start", "idempotent"):
                figures[f"{prefix}.{shape}.{kind}.ratio_ours_over_taskflow"] = (
                    figures[f"{prefix}.{shape}.{kind}.ms_per_task"] / taskflow[shape])

    def unit(name: str) -> str:
        for marker, label in (("ratio", "ratio"), ("speedup", "ratio"), ("ms_per", "ms/task"),
                              ("per_task", "per task"), ("seconds", "s"),
                              ("engines_used", "engines")):
            if marker in name:
                return label
        return ""

    rows = [(name, unit(name), float(value)) for name, value in figures.items()]
    report("workflow engine vs TaskFlow, and scaling over engine processes", rows, figures,
           parser_args.json,
           ["ratio_ours_over_taskflow: our ms per task / TaskFlow's (mean of its serial and "
            "parallel engines) on the same shape; goal <= 0.1 on SQLite, <= 0.2 on Cassandra."])


if __name__ == "__main__":
    main()
