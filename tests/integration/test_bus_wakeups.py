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
from tests.engines import wait_until
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


class Heard:
    """A listener that only notes the workflows it was told are ready."""

    def __init__(self) -> None:
        self.engine_id = f"heard-{uuid.uuid4().hex[:6]}"
        self.ready: list[str] = []

    def on_workflow_ready(self, workflow_id: str) -> None:
        self.ready.append(workflow_id)

    def __getattr__(self, name: str) -> object:
        return lambda *args, **kwargs: None


def test_an_engine_that_subscribed_hears_a_cast_made_at_once() -> None:
    """``subscribe`` returns once the engine's queues exist: a cast made before them reaches
    nobody (the sweep finds its work seconds later), so an engine announces itself only once
    it can hear. Here the cast leaves the moment ``subscribe`` returns, on a topic nobody
    used before."""
    topic = f"sahara-es-subscribe-{uuid.uuid4().hex[:8]}"
    transports = [transport_for(messaging_conf(broker_url())) for _ in range(2)]
    assert transports[0] is not None and transports[1] is not None
    engine_side = RabbitWakeups(transports[0], BusSettings(topic=topic))
    api_side = RabbitWakeups(transports[1], BusSettings(topic=topic))
    listener = Heard()
    try:
        engine_side.subscribe(listener)  # type: ignore[arg-type]
        api_side.workflow_ready("w-at-once")
        wait_until(lambda: listener.ready == ["w-at-once"], timeout=10)
    finally:
        api_side.close()
        engine_side.close()
