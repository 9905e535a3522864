"""The handoff's fast path (``engine/handoff.py``): a request the API's cast names is handled
at once, read from the store, while the feed stays the backstop. Handled by both paths, it
starts its workflow once; its cast lost, the feed starts it; a stream's requests reach the
rules in stream order whichever path each one takes."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import pytest

from sahara_es.engine import (
    Engine,
    EngineConfig,
    Handoff,
    WorkflowRequest,
    WorkflowStatus,
    wait_for,
)
from sahara_es.engine.follower import EAGER_SECONDS
from sahara_es.engine.handoff import Rules
from sahara_es.engine.wakeups import attach, detach, wakeups_of
from sahara_es.events import DomainEvent, Metadata, RecordedEvent, registry
from sahara_es.events import workflow as wev
from sahara_es.rpc.announce import announcing
from sahara_es.rpc.bus import RabbitWakeups, transport_for
from sahara_es.rpc.settings import BusSettings
from sahara_es.store import Store, open_store
from tests.engines import wait_until
from tests.factories import (
    CASSANDRA_HOST,
    CASSANDRA_TEST_KEYSPACE,
    CountingStore,
    drop_cassandra_keyspace,
)
from tests.rabbitmq import UnreliableWakeups, broker_url, messaging_conf
from tests.workflows import lines  # noqa: F401 - registers the test.* workflow types


@registry.event("FastPathTestRequested")
@dataclass(frozen=True)
class Requested(DomainEvent):
    """What the tests' command records: one workflow asked for."""

    workflow_id: str


class Recording:
    """One no-op workflow per request; remembers the order in which it was asked."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, int]] = []

    def __call__(self, store: Store, event: RecordedEvent) -> Iterator[WorkflowRequest]:
        self.seen.append((event.stream_id, event.version))
        yield WorkflowRequest("test.noops", {"tasks": 1, "shape": "parallel",
                                             "idempotent": True},
                              str(event.data["workflow_id"]), project="fast")

    def rules(self) -> Rules:
        return {"FastPathTestRequested": self}


@pytest.fixture
def own_store(backend: str, tmp_path: Path) -> Iterator[Store]:
    """A store of the test's own: its feed holds only this test's events."""
    if backend == "sqlite":
        store = open_store(f"sqlite:///{tmp_path}/s.db", upgrade=True)
        yield store
        store.close()
        return
    keyspace = f"{CASSANDRA_TEST_KEYSPACE}_fast_path"
    drop_cassandra_keyspace(keyspace)
    store = open_store(f"cassandra://{CASSANDRA_HOST}:9042/{keyspace}", upgrade=True)
    yield store
    store.close()
    drop_cassandra_keyspace(keyspace)


def request(store: Store, stream: str, expected: int) -> str:
    workflow_id = uuid.uuid4().hex
    store.append(stream, [registry.new_event(Requested(workflow_id),
                                             Metadata(actor="test", project_id="fast"))],
                 expected)
    return workflow_id


def starts(store: Store, workflow_id: str) -> int:
    return sum(1 for e in store.read(f"workflow-{workflow_id}")
               if e.type == wev.WorkflowStarted.event_type)


def active_handoff(store: Store, rules: Rules) -> Handoff:
    handoff = Handoff(store, rules, owner=f"test-{uuid.uuid4().hex[:6]}",
                      name=f"handoff-{uuid.uuid4().hex[:6]}")
    assert handoff._hold_lease()
    return handoff


def follow_feed_until(handoff: Handoff, done: Callable[[], bool]) -> None:
    """Read the feed until ``done`` (Cassandra's feed has the request once relayed)."""
    def read() -> bool:
        handoff.run_once()
        return done()

    wait_until(read, timeout=30)


def test_a_request_handled_as_announced_and_from_the_feed_starts_its_workflow_once(
        own_store: Store) -> None:
    rule = Recording()
    handoff = active_handoff(own_store, rule.rules())
    workflow_id = request(own_store, "fastpath-a", 0)

    assert handoff.announced("fastpath-a", 1, 1) == 1
    assert starts(own_store, workflow_id) == 1
    assert handoff.announced("fastpath-a", 1, 1) == 0  # a repeated cast: nothing again

    # another handoff, which never heard the cast, reads the feed: started already
    other = active_handoff(own_store, rule.rules())
    follow_feed_until(other, lambda: rule.seen.count(("fastpath-a", 1)) == 2)
    handoff.run_once()  # passes the request again: handled already, the rule not asked
    assert (handoff.started, handoff.fast, other.started) == (1, 1, 0)
    assert rule.seen.count(("fastpath-a", 1)) == 2
    assert starts(own_store, workflow_id) == 1
    assert own_store.get_lease(f"workflow-{workflow_id}") is not None  # offered to engines


def test_a_request_whose_cast_is_lost_is_started_by_the_feed(own_store: Store) -> None:
    rule = Recording()
    handoff = active_handoff(own_store, rule.rules())
    workflow_id = request(own_store, "fastpath-b", 0)

    follow_feed_until(handoff, lambda: handoff.started == 1)
    assert (handoff.fast, starts(own_store, workflow_id)) == (0, 1)


def test_a_stream_s_requests_reach_the_rules_in_stream_order(own_store: Store) -> None:
    rule = Recording()
    handoff = active_handoff(own_store, rule.rules())
    first = request(own_store, "fastpath-c", 0)
    second = request(own_store, "fastpath-c", 1)

    # the second's cast arrives first: its predecessor is not handled, so it waits
    assert handoff.announced("fastpath-c", 2, 2) == 0
    assert starts(own_store, second) == 0
    assert handoff.announced("fastpath-c", 1, 1) == 1
    assert handoff.announced("fastpath-c", 2, 2) == 1
    assert rule.seen == [("fastpath-c", 1), ("fastpath-c", 2)]

    # a handoff that never handled the stream leaves its later requests to the feed
    third = request(own_store, "fastpath-c", 2)
    newcomer = active_handoff(own_store, rule.rules())
    assert newcomer.announced("fastpath-c", 3, 3) == 0
    follow_feed_until(newcomer, lambda: len(rule.seen) == 5)  # in order, two started already
    assert rule.seen[2:] == [("fastpath-c", 1), ("fastpath-c", 2), ("fastpath-c", 3)]
    fourth = request(own_store, "fastpath-c", 3)
    assert newcomer.announced("fastpath-c", 4, 4) == 1  # the feed vouched for 1 to 3
    assert [starts(own_store, w) for w in (first, second, third, fourth)] == [1, 1, 1, 1]


def test_only_the_active_handoff_takes_the_fast_path(own_store: Store) -> None:
    rule = Recording()
    holder = active_handoff(own_store, rule.rules())
    standby = Handoff(own_store, rule.rules(), owner="standby", name=holder.name)
    assert not standby._hold_lease()
    workflow_id = request(own_store, "fastpath-d", 0)

    assert standby.announced("fastpath-d", 1, 1) == 0
    assert starts(own_store, workflow_id) == 0
    assert holder.announced("fastpath-d", 1, 1) == 1


def test_a_request_taken_by_the_handoff_s_engine_reads_only_the_request(
        own_store: Store) -> None:
    """From the cast to the task's start, the thread that heard it asks the store for the
    request (one read), the workflow's record and its lease (two writes): the workflow's
    first event is read back neither by the rule's region lookup nor by the engine taking
    it. The feed, passing that workflow's ``WorkflowStarted`` later, reads nothing of it
    (this handoff gave it its lease: there is nothing to adopt)."""
    counting = CountingStore(own_store)
    engine = Engine(cast(Store, counting), EngineConfig(
        engine_id=f"reads-{uuid.uuid4().hex[:6]}", concurrency=2, lease_ttl=5.0)).start()
    handoff = active_handoff(cast(Store, counting), Recording().rules())
    handoff.take = engine.take_started
    try:
        workflow_id = request(own_store, "fastpath-r", 0)
        before = counting.calls_here()
        assert handoff.announced("fastpath-r", 1, 1) == 1
        asked = counting.calls_here() - before
        assert asked == Counter({"read": 1, "append": 1, "acquire_lease": 1}), asked
        assert engine.stats["took as started"] == 1
        assert wait_for(own_store, workflow_id, timeout=30).status is WorkflowStatus.SUCCEEDED

        stream = f"workflow-{workflow_id}"
        wait_until(lambda: any(e.stream_id == stream  # relayed, on Cassandra
                               for e in own_store.read_feed(None, limit=10_000)), timeout=30)
        before = counting.calls_here()
        while not handoff.run_once():
            pass
        passing = counting.calls_here() - before
        assert not {"get_lease", "stream_version", "read"} & set(passing), passing
        assert handoff.started == 1
    finally:
        engine.stop(grace=5)


def test_a_handoff_waiting_for_the_lease_does_not_ask_for_it_at_every_nudge(
        own_store: Store) -> None:
    """Every engine hears every command's cast; the one whose handoff waits for the lease
    asks for it again at most every quarter TTL, however often it is nudged."""
    holder = active_handoff(own_store, {})
    counting = CountingStore(own_store)
    standby = Handoff(cast(Store, counting), {}, owner="standby", name=holder.name, ttl=8.0)
    assert not standby._hold_lease()
    for _ in range(20):
        standby.nudge()
        assert not standby._hold_lease()
    assert counting.calls()["acquire_lease"] == 1


REQUESTS = 12


def test_engines_on_the_bus_start_each_request_once_whether_its_cast_arrives_or_not(
        own_store: Store) -> None:
    """The API's casts half lost and a quarter doubled, over a real RabbitMQ: every request
    starts one workflow, which runs; the announced ones took the fast path (and the engine of
    the handoff ran what it started when it had the most free slots), the lost ones the
    feed; a stream's two requests were handled in order."""
    rule = Recording()
    topic = f"sahara-es-engine-{uuid.uuid4().hex}"
    transport = transport_for(messaging_conf(broker_url()))
    assert transport is not None
    api_bus = RabbitWakeups(transport, BusSettings(topic=topic))
    unreliable = UnreliableWakeups(api_bus, drop=0.5, duplicate=0.25, seed=3)
    api_store = announcing(own_store, unreliable, rule.rules().keys())  # another object
    engine_transport = transport_for(messaging_conf(broker_url()))
    assert engine_transport is not None
    engine_bus = RabbitWakeups(engine_transport, BusSettings(topic=topic))
    attach(own_store, engine_bus)
    engines: list[Engine] = []
    try:
        for i in range(2):
            engines.append(Engine(own_store, EngineConfig(
                engine_id=f"fast-{i}-{uuid.uuid4().hex[:6]}", concurrency=2, lease_ttl=3.0,
                sweep_interval_with_bus=0.5), handoff=rule.rules()).start())
        def listening() -> bool:  # the servers subscribe on threads: probe until heard
            api_bus.requests_recorded()
            return all(e.stats["heard requests_recorded"] for e in engines)

        wait_until(listening, timeout=30, poll=0.2)
        wait_until(lambda: any(e.handoff.active for e in engines if e.handoff))
        # The probe's casts nudged the handoffs, which then read the feed every EAGER_POLL
        # for EAGER_SECONDS: requests made meanwhile would race that reading, not the casts.
        time.sleep(EAGER_SECONDS + 0.2)
        ids = [request(api_store, f"fastpath-e{i}", 0) for i in range(REQUESTS - 1)]
        ids.append(request(api_store, "fastpath-e0", 1))  # the first stream's second
        states = [wait_for(own_store, w, timeout=120) for w in ids]
    finally:
        for engine in engines:
            engine.stop(grace=10)
        detach(own_store)
        engine_bus.close()
        api_bus.close()

    assert all(s.status is WorkflowStatus.SUCCEEDED for s in states)
    assert [starts(own_store, w) for w in ids] == [1] * REQUESTS
    assert sum(e.handoff.started for e in engines if e.handoff) == REQUESTS
    assert unreliable.dropped > 0
    announced = sum(e.stats["requests handled as announced"] for e in engines)
    assert 0 < announced < REQUESTS
    assert sum(e.stats["took as started"] for e in engines) > 0
    first_stream = [version for stream, version in rule.seen if stream == "fastpath-e0"]
    assert first_stream.index(1) < first_stream.index(2)


def test_the_handoff_s_engine_runs_what_it_starts_only_when_no_engine_has_more_room(
        sqlite_store: Store) -> None:
    """So that one engine does not gather every workflow: while another live engine says it
    has more free slots, what the handoff starts is offered (and run) as before."""
    rule = Recording()
    handoff_side = Engine(sqlite_store, EngineConfig(engine_id="with-handoff", concurrency=2),
                          handoff=rule.rules()).start()
    other = Engine(sqlite_store, EngineConfig(engine_id="roomier", concurrency=8)).start()
    api_store = announcing(sqlite_store, wakeups_of(sqlite_store), rule.rules().keys())
    try:
        wait_until(lambda: other.engine_id in handoff_side._live_engines)
        wait_until(lambda: handoff_side.handoff is not None and handoff_side.handoff.active)
        handoff_side.on_capacity(other.engine_id, 8)  # as the bus would carry it
        offered = request(api_store, "fastpath-f1", 0)
        assert wait_for(sqlite_store, offered, timeout=30).status is WorkflowStatus.SUCCEEDED
        assert handoff_side.stats["took as started"] == 0

        handoff_side.on_capacity(other.engine_id, 0)
        taken = request(api_store, "fastpath-f2", 0)
        state = wait_for(sqlite_store, taken, timeout=30)
        assert state.status is WorkflowStatus.SUCCEEDED and state.owner == "with-handoff"
        assert handoff_side.stats["took as started"] == 1
        assert handoff_side.stats["requests handled as announced"] == 2
    finally:
        other.stop(grace=5)
        handoff_side.stop(grace=5)
