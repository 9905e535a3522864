"""The bus's wake-ups are hints, never truth: engines on a real RabbitMQ finish every task
exactly once whether casts arrive once, twice or never (the sweep is the backstop)."""

from __future__ import annotations

import collections
import uuid
from pathlib import Path

import pytest

from sahara_es.engine import Engine, EngineConfig, WorkflowStatus, start_workflow, wait_for
from sahara_es.engine.wakeups import attach, detach
from sahara_es.rpc.bus import RabbitWakeups, transport_for
from sahara_es.rpc.settings import BusSettings
from sahara_es.store import Store
from tests.rabbitmq import UnreliableWakeups, broker_url, messaging_conf
from tests.workflows import lines

TASKS = 24


@pytest.mark.parametrize(("drop", "duplicate"), [(0.5, 0.5), (1.0, 0.0)],
                         ids=["half-lost-half-doubled", "all-lost"])
def test_lost_and_repeated_casts_lose_nothing_and_double_nothing(
        store: Store, tmp_path: Path, drop: float, duplicate: float) -> None:
    transport = transport_for(messaging_conf(broker_url()))
    assert transport is not None
    bus = RabbitWakeups(transport, BusSettings(topic=f"sahara-es-engine-{uuid.uuid4().hex}"))
    unreliable = UnreliableWakeups(bus, drop=drop, duplicate=duplicate)
    attach(store, unreliable)
    engines: list[Engine] = []
    try:
        for i in range(3):
            config = EngineConfig(engine_id=f"bus-{i}-{uuid.uuid4().hex[:6]}", concurrency=2,
                                  lease_ttl=3.0, sweep_interval_with_bus=0.5,
                                  offer_delay=0.0)  # offers at once: casts carry them
            engines.append(Engine(store, config).start())
        effects = str(tmp_path / "effects")
        workflow = start_workflow(store, "test.fan-out",
                                  {"tasks": TASKS, "effects": effects, "sleep": 0.05})
        state = wait_for(store, workflow, timeout=120)
    finally:
        for engine in engines:
            engine.stop(grace=10)
        detach(store)
        bus.close()

    assert state.status is WorkflowStatus.SUCCEEDED
    counts = collections.Counter(lines(effects))
    assert {line for line, n in counts.items() if n > 1} == set()
    assert set(counts) == {"first", "last", *(f"m{i:03d}" for i in range(TASKS))}
    assert unreliable.dropped > 0
    if duplicate:
        assert unreliable.duplicated > 0
        # the offers really went over the bus: engines that do not own it claimed from it
        assert sum(e.stats["claimed"] for e in engines) > 0
