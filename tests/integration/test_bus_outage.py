"""RabbitMQ stopped in the middle of a workflow and started again: the engines, real
processes on the bus, finish it, and nothing ran twice (the store is the truth; while the
broker is away the sweep finds the work)."""

from __future__ import annotations

import collections
import uuid
from pathlib import Path

from sahara_es.engine import WorkflowStatus, start_workflow, wait_for
from sahara_es.store import Store
from tests.engines import engine_alive, wait_until
from tests.rabbitmq import bus_config, engine_process, private_broker
from tests.workflows import lines

TASKS = 40


def test_a_workflow_outlives_a_broker_outage_and_runs_each_task_once(
        store: Store, url: str, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    config = bus_config(tmp_path, tag, sweep_interval=1.0)
    effects = str(tmp_path / "effects")
    with private_broker(tmp_path / "broker") as broker, \
            engine_process(f"a-{tag}", config, url, broker.url, tmp_path,
                           "--concurrency", "2") as first, \
            engine_process(f"b-{tag}", config, url, broker.url, tmp_path,
                           "--concurrency", "2") as second:
        wait_until(lambda: engine_alive(store, f"a-{tag}") and engine_alive(store, f"b-{tag}"),
                   timeout=60)
        workflow = start_workflow(store, "test.fan-out",
                                  {"tasks": TASKS, "effects": effects, "sleep": 0.5})
        wait_until(lambda: len(lines(effects)) >= 6, timeout=60)
        broker.stop()
        done_while_away = len(lines(effects))
        wait_until(lambda: len(lines(effects)) >= done_while_away + 4, timeout=60)
        broker.start()
        state = wait_for(store, workflow, timeout=120)
        assert first.stop() == 0
        assert second.stop() == 0

    assert state.status is WorkflowStatus.SUCCEEDED
    counts = collections.Counter(lines(effects))
    assert {line for line, n in counts.items() if n > 1} == set()
    assert set(counts) == {"first", "last", *(f"m{i:03d}" for i in range(TASKS))}
