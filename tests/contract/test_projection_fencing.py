"""Fenced projection writes: a row write, a checkpoint or a live-generation switch that carries
a lease (``fence=``) is refused with ``LeaseLost``, changing nothing, once a newer epoch has
written that generation (or, for the live generation, that projection); a newer epoch is
accepted; the live generation never moves back; the fence is never a row; writes without a
fence work as before. Then the case the fence is for: a projector paused just before a write
wakes after another took its lease over, and its write is refused (doc/projections.rst)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, cast

import pytest

from sahara_es.events import RecordedEvent
from sahara_es.projections import ProjectionRunner, Projector, rebuild, update
from sahara_es.projections.base import Doc, Projection
from sahara_es.store import (
    ConcurrencyConflict,
    Lease,
    LeaseLost,
    Store,
    Unavailable,
    parse_store_url,
)
from tests.conftest import require_backend
from tests.factories import CASSANDRA_TEST_URL, events


def unique(prefix: str = "fenced") -> str:
    return f"{prefix}{uuid.uuid4().hex[:12]}"


def lease(epoch: int, resource: str = "projector-test") -> Lease:
    """A lease as a projector would hold it: only its epoch matters to a fenced write."""
    return Lease(resource, f"owner-{epoch}", epoch, time.time() + 60)


OLD, NEW = lease(1), lease(2)


# -- rows -------------------------------------------------------------------------------


def test_rows_of_an_older_epoch_are_refused_and_change_nothing(store: Store) -> None:
    name = unique()
    store.put_rows(name, 1, {"a": {"by": "new"}}, fence=NEW)

    with pytest.raises(LeaseLost):
        store.put_rows(name, 1, {"a": {"by": "old"}, "b": {"by": "old"}, "c": None},
                       fence=OLD)

    assert list(store.scan_rows(name, 1)) == [("a", {"by": "new"})]


def test_a_fence_alone_refuses_the_older_epoch_before_the_newer_one_wrote_a_row(
        store: Store) -> None:
    """What a new projector does first to every partition it will write (rows, index,
    checkpoint), before it reads: a late write of the former owner lands nowhere."""
    name = unique()
    store.put_rows(name, 1, {"a": {"by": "old"}}, fence=OLD)
    store.save_checkpoint(name, 1, "7", fence=OLD)

    store.put_rows(name, 1, {}, fence=NEW)
    store.save_checkpoint(name, 1, "7", fence=NEW)

    with pytest.raises(LeaseLost):
        store.put_rows(name, 1, {"a": {"by": "late"}}, fence=OLD)
    with pytest.raises(LeaseLost):
        store.save_checkpoint(name, 1, "9", fence=OLD)
    assert list(store.scan_rows(name, 1)) == [("a", {"by": "old"})]
    assert store.checkpoint(name, 1) == "7"


def test_a_newer_epoch_takes_the_rows_over_and_the_older_one_is_refused_from_then_on(
        store: Store) -> None:
    name = unique()
    store.put_rows(name, 1, {"a": {"by": 1}}, fence=OLD)
    store.put_rows(name, 1, {"b": {"by": 1}}, fence=OLD)  # its own epoch again: accepted

    store.put_rows(name, 1, {"a": {"by": 2}, "b": None}, fence=NEW)
    with pytest.raises(LeaseLost):
        store.put_rows(name, 1, {"a": {"by": 1}}, fence=OLD)

    assert list(store.scan_rows(name, 1)) == [("a", {"by": 2})]


def test_a_fenced_write_of_many_rows_lands_whole(store: Store) -> None:
    name = unique()
    keys = [f"k{i:04d}" for i in range(250)]  # more than one batch
    store.put_rows(name, 1, {key: {"key": key} for key in keys}, fence=OLD)

    with pytest.raises(LeaseLost):
        store.put_rows(name, 1, dict.fromkeys(keys), fence=lease(0))

    assert [key for key, _ in store.scan_rows(name, 1)] == keys


def test_the_fence_is_never_a_row(store: Store) -> None:
    name = unique()
    store.put_rows(name, 1, {"a": {"n": 1}}, fence=NEW)
    store.put_rows(name, 1, {"a": None}, fence=NEW)

    assert store.get_row(name, 1, "a") is None
    assert store.get_row(name, 1, "") is None
    assert list(store.scan_rows(name, 1)) == []
    assert list(store.scan_rows(name, 1, prefix="")) == []

    store.put_rows(name, 1, {"": {"empty": True}, "b": {"n": 2}}, fence=NEW)
    assert list(store.scan_rows(name, 1)) == [("", {"empty": True}), ("b", {"n": 2})]


def test_generations_are_fenced_apart(store: Store) -> None:
    name = unique()
    store.put_rows(name, 2, {"a": {"gen": 2}}, fence=NEW)

    store.put_rows(name, 1, {"a": {"gen": 1}}, fence=OLD)  # another generation: its own fence

    assert store.get_row(name, 1, "a") == {"gen": 1}
    assert store.get_row(name, 2, "a") == {"gen": 2}


def test_unfenced_writes_work_as_before_and_beside_fenced_ones(store: Store) -> None:
    name = unique()
    store.put_rows(name, 1, {"a": {"n": 1}})
    store.put_rows(name, 1, {"b": {"n": 2}}, fence=NEW)
    store.put_rows(name, 1, {"a": {"n": 3}, "b": None})
    store.save_checkpoint(name, 1, "p1")
    store.save_checkpoint(name, 1, "p2", fence=NEW)
    store.save_checkpoint(name, 1, "p3")

    assert list(store.scan_rows(name, 1)) == [("a", {"n": 3})]
    assert store.checkpoint(name, 1) == "p3"


# -- checkpoints ------------------------------------------------------------------------


def test_a_checkpoint_of_an_older_epoch_is_refused_and_does_not_move_back(store: Store) -> None:
    name = unique()
    store.save_checkpoint(name, 1, "00000000000000000010", fence=OLD)
    store.save_checkpoint(name, 1, "00000000000000000020", fence=NEW)

    with pytest.raises(LeaseLost):
        store.save_checkpoint(name, 1, "00000000000000000015", fence=OLD)

    assert store.checkpoint(name, 1) == "00000000000000000020"
    store.save_checkpoint(name, 1, "00000000000000000030", fence=lease(3))
    assert store.checkpoint(name, 1) == "00000000000000000030"


def test_a_checkpoint_written_unfenced_before_is_taken_over_by_a_fenced_one(
        store: Store) -> None:
    name = unique()
    store.save_checkpoint(name, 1, "p1")

    store.save_checkpoint(name, 1, "p2", fence=OLD)

    assert store.checkpoint(name, 1) == "p2"


# -- the live generation ----------------------------------------------------------------


def test_a_live_switch_of_an_older_epoch_is_refused(store: Store) -> None:
    name = unique()
    store.set_live_generation(name, 5, fence=NEW)

    with pytest.raises(LeaseLost):
        store.set_live_generation(name, 9, fence=OLD)

    assert store.live_generation(name) == 5
    store.set_live_generation(name, 9, fence=NEW)
    store.set_live_generation(name, 9, fence=NEW)  # again: the same state, accepted
    assert store.live_generation(name) == 9


def test_the_live_generation_never_goes_back(store: Store) -> None:
    name = unique()
    store.set_live_generation(name, 5)
    store.set_live_generation(name, 7, fence=OLD)

    with pytest.raises(ConcurrencyConflict):
        store.set_live_generation(name, 6, fence=NEW)
    with pytest.raises(ConcurrencyConflict):
        store.set_live_generation(name, 6)

    assert store.live_generation(name) == 7


# -- rebuilds ---------------------------------------------------------------------------


class Counting(Projection):
    """Counts the events of each stream of one category; the feed's other events are not
    its business (the store is shared by the whole session)."""

    name = "counting"
    category = ""

    def key(self, event: RecordedEvent) -> str | None:
        return event.stream_id if event.stream_id.startswith(f"{self.category}-") else None

    def evolve(self, doc: Doc | None, event: RecordedEvent) -> Doc | None:
        return {"count": (doc or {}).get("count", 0) + 1}


def counting(name: str, category: str, base: type[Projection] = Counting) -> Projection:
    return cast(Projection, type("Counted", (base,), {"name": name, "category": category})())


def test_a_stale_rebuild_is_refused_and_the_live_generation_keeps_its_rows(
        store: Store) -> None:
    category = unique("fencedrebuild")
    store.append(f"{category}-1", events(2), 0)
    projection = counting(unique(), category)
    live, _ = rebuild(store, projection, fence=NEW)
    wait_for(lambda: update(store, projection, fence=NEW) and store.get_row(
        projection.name, live, f"{category}-1"), "the feed to deliver the events")

    with pytest.raises(LeaseLost):
        rebuild(store, projection, fence=OLD)

    assert store.live_generation(projection.name) == live
    assert store.get_row(projection.name, live, f"{category}-1") == {
        "count": 2, "_applied": {f"{category}-1": 2}}


def test_a_generation_built_before_a_newer_live_one_can_no_longer_be_made_live(
        store: Store) -> None:
    category = unique("fencedrebuild")
    store.append(f"{category}-1", events(1), 0)
    projection = counting(unique(), category)
    first, _ = rebuild(store, projection)
    wait_for(lambda: update(store, projection) and store.get_row(
        projection.name, first, f"{category}-1"), "the feed to deliver the event")
    late = ProjectionRunner(store, projection, first + 1)  # began before the next one
    late.catch_up()
    time.sleep(0.01)  # generations are milliseconds: the next one is then newer than the late
    newer, _ = rebuild(store, projection)

    with pytest.raises(ConcurrencyConflict):
        store.set_live_generation(projection.name, late.generation)

    assert store.live_generation(projection.name) == newer > late.generation
    assert list(store.scan_rows(projection.name, newer))  # the live one keeps its rows
    assert list(store.scan_rows(projection.name, first)) == []  # superseded: dropped


# -- a projector paused past its lease --------------------------------------------------


class PausedBefore:
    """The store, except that ``method`` called for ``projection`` once ``armed`` waits for
    ``go`` before it writes, and records what the write then did."""

    def __init__(self, store: Store, method: str, projection: str) -> None:
        self.store, self.method, self.projection = store, method, projection
        self.armed = False
        self.paused, self.go = threading.Event(), threading.Event()
        self.outcome: BaseException | str | None = None

    def __getattr__(self, name: str) -> Any:
        real = getattr(self.store, name)
        if name != self.method:
            return real

        def paused(projection: str, *args: Any, **kwargs: Any) -> Any:
            if not (self.armed and projection == self.projection):
                return real(projection, *args, **kwargs)
            self.armed = False
            self.paused.set()
            self.go.wait(120)
            try:
                result = real(projection, *args, **kwargs)
            except BaseException as error:
                self.outcome = error
                raise
            self.outcome = "written"
            return result

        return paused


def wait_for(condition: Callable[[], object], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.mark.parametrize("method", ["put_rows", "save_checkpoint"])
def test_a_projector_paused_past_its_lease_cannot_write_after_another_took_over(
        store: Store, method: str) -> None:
    category, resource = unique("fencedprojector"), unique("projector-")
    stream = f"{category}-1"
    projection = counting(unique(), category)
    name = projection.name
    store.append(stream, events(1), 0)

    def count() -> int:
        live = store.live_generation(name)
        row = store.get_row(name, live, stream) if live is not None else None
        return int(row["count"]) if row else 0

    paused = PausedBefore(store, method, name)
    first = Projector(cast(Store, paused), [projection], owner="first", ttl=1.0, poll=0.05,
                      lease=resource).start()
    second = None
    try:
        wait_for(lambda: count() == 1, "the first projector to build the projection")
        paused.armed = True
        store.append(stream, events(1), 1)
        assert paused.paused.wait(60), f"the first projector never reached {method}"

        # Its lease expires while it is paused; the second takes over and goes on.
        second = Projector(store, [projection], owner="second", ttl=5.0, poll=0.05,
                           lease=resource).start()
        wait_for(lambda: second.active, "the second projector to take the lease over")
        store.append(stream, events(1), 2)
        wait_for(lambda: count() == 3, "the second projector to apply the new events")
        generation = store.live_generation(name)
        assert generation is not None
        rows, checkpoint = list(store.scan_rows(name, generation)), store.checkpoint(
            name, generation)

        paused.go.set()  # the first wakes and writes what it had prepared
        wait_for(lambda: paused.outcome is not None, "the first projector's late write")

        assert isinstance(paused.outcome, LeaseLost)
        time.sleep(0.5)  # a few more polls of both
        assert list(store.scan_rows(name, generation)) == rows
        assert store.checkpoint(name, generation) == checkpoint
        assert rows == [(stream, {"count": 3, "_applied": {stream: 3}})]
        held = store.get_lease(resource)
        assert held is not None and held.owner == "second" and not first.active
    finally:
        paused.go.set()
        first.stop()
        if second is not None:
            second.stop()
            second.release()


# -- what fencing costs -----------------------------------------------------------------


def catch_up_seconds(store: Store, events_count: int, rounds: int = 2) -> dict[str, float]:
    """Seconds for a projector catch-up that writes ``events_count`` rows, one per feed event
    (each event its own stream), into a fresh generation, with fenced and with unfenced writes
    (the best of ``rounds``), and for a catch-up that reads the same feed and writes nothing
    (``read``): the feed holds every other test's events too."""
    category = unique("fencingcost")
    for n in range(events_count):
        store.append(f"{category}-{n}", events(1), 0)

    def catch_up(kind: str, fence: Lease | None) -> float:
        projection = counting(unique(), category if kind != "read" else unique())
        runner = ProjectionRunner(store, projection, 1, fence=fence)
        try:
            started = time.perf_counter()
            runner.catch_up()
            elapsed = time.perf_counter() - started
            written = sum(1 for _ in store.scan_rows(projection.name, 1))
            return elapsed if kind == "read" or written == events_count else -1.0
        finally:
            runner.drop()

    wait_for(lambda: catch_up("unfenced", None) >= 0, "the feed to deliver every event")
    best = {"read": float("inf"), "unfenced": float("inf"), "fenced": float("inf")}
    kinds: list[tuple[str, Lease | None]] = [("read", None), ("unfenced", None),
                                             ("fenced", lease(1))]
    for round_ in range(rounds):
        for kind, fence in kinds if round_ % 2 else kinds[::-1]:
            elapsed = catch_up(kind, fence)
            assert elapsed >= 0, f"a {kind} catch-up missed rows"
            best[kind] = min(best[kind], elapsed)
    return best


def test_fencing_cost_is_measured(store: Store, backend: str) -> None:
    count = 500
    seconds = catch_up_seconds(store, count)
    writes = {kind: seconds[kind] - seconds["read"] for kind in ("unfenced", "fenced")}
    print(f"\n{backend}: catch-up of {count} events, one row each: read only"
          f" {seconds['read']:.3f} s, unfenced {seconds['unfenced']:.3f} s, fenced"
          f" {seconds['fenced']:.3f} s; the writing costs"
          f" x{writes['fenced'] / max(writes['unfenced'], 1e-6):.2f} fenced")


# -- lost replies (Cassandra: SQLite has none) -------------------------------------------


@pytest.fixture(scope="module")
def flaky() -> Iterator[Any]:
    """The real Cassandra store, except that the replies of its next ``lose`` LWTs go missing
    after they applied (``apply_then_lose``) or before they were sent."""
    require_backend("cassandra")
    from sahara_es.store.cassandra import CassandraStore, _OutcomeUnknown

    class RepliesLost(CassandraStore):
        lose = 0
        apply_then_lose = True

        def _lwt(self, statement: Any, serial: str) -> dict[str, Any]:
            if not self.lose:
                return super()._lwt(statement, serial)
            self.lose -= 1
            if self.apply_then_lose:
                super()._lwt(statement, serial)
            raise _OutcomeUnknown("reply lost")

    store = RepliesLost(parse_store_url(CASSANDRA_TEST_URL)[1]["config"])
    store.upgrade()
    yield store
    store.close()


WRITES: dict[str, Callable[[Store, str, Lease], None]] = {
    "put_rows": lambda store, name, fence: store.put_rows(name, 1, {"a": {"by": fence.epoch}},
                                                         fence=fence),
    "save_checkpoint": lambda store, name, fence: store.save_checkpoint(
        name, 1, f"p{fence.epoch}", fence=fence),
    "set_live_generation": lambda store, name, fence: store.set_live_generation(
        name, fence.epoch, fence=fence),
}


def written(store: Store, name: str) -> tuple[Any, ...]:
    return store.get_row(name, 1, "a"), store.checkpoint(name, 1), store.live_generation(name)


@pytest.mark.parametrize("method", sorted(WRITES))
@pytest.mark.parametrize("applied", [True, False])
def test_a_fenced_write_whose_reply_was_lost_reports_what_happened(
        flaky: Any, method: str, applied: bool) -> None:
    name, write = unique(), WRITES[method]
    write(flaky, name, OLD)
    before = written(flaky, name)

    flaky.lose, flaky.apply_then_lose = 1, applied  # sent again if it had not applied
    write(flaky, name, NEW)
    after = written(flaky, name)

    flaky.lose, flaky.apply_then_lose = 1, applied  # refused, whether or not it was lost
    with pytest.raises(LeaseLost):
        write(flaky, name, OLD)
    assert written(flaky, name) == after != before


@pytest.mark.parametrize("method", sorted(WRITES))
def test_a_fenced_write_that_never_gets_through_is_unavailable_and_changes_nothing(
        flaky: Any, method: str) -> None:
    name, write = unique(), WRITES[method]
    write(flaky, name, OLD)
    before = written(flaky, name)

    flaky.lose, flaky.apply_then_lose = 100, False
    try:
        with pytest.raises(Unavailable):
            write(flaky, name, NEW)
    finally:
        flaky.lose = 0
    assert written(flaky, name) == before
