"""Unknown LWT outcomes are settled by a SERIAL re-read, never guessed.

The node is real and so are the writes. Most tests drop only the coordinator's reply on the way
back, as when a ``WriteTimeout`` of type CAS arrives after the proposal reached replicas; the
last one freezes the node itself, so the driver's own timeout and its mapping are exercised.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from sahara_es.store import ConcurrencyConflict, Unavailable, parse_store_url
from sahara_es.store.cassandra import CassandraStore, _OutcomeUnknown
from tests.conftest import require_backend
from tests.engines import ROOT
from tests.factories import CASSANDRA_TEST_URL, events, new_stream


class RepliesLost(CassandraStore):
    """The real store, except that its LWT replies can be made to go missing."""

    lose = False
    apply_then_lose = True

    def _lwt(self, statement: Any, serial: str) -> dict[str, Any]:
        if not self.lose:
            return super()._lwt(statement, serial)
        if self.apply_then_lose:
            super()._lwt(statement, serial)
        raise _OutcomeUnknown("reply lost")


@contextmanager
def replies_lost(store: RepliesLost, *, applied: bool) -> Iterator[None]:
    store.lose, store.apply_then_lose = True, applied
    try:
        yield
    finally:
        store.lose = False


@pytest.fixture(scope="module")
def flaky() -> Iterator[RepliesLost]:
    require_backend("cassandra")
    # A short request timeout: an append whose reply is lost and whose event is not there waits
    # that long for its LWT to become impossible before it may say "not applied".
    store = RepliesLost(parse_store_url(CASSANDRA_TEST_URL + "&request_timeout=2")[1]["config"])
    store.upgrade()
    yield store
    store.close()


def test_an_append_that_applied_before_its_reply_was_lost_is_reported_applied(
    flaky: RepliesLost,
) -> None:
    stream = new_stream()
    with replies_lost(flaky, applied=True):
        assert flaky.append(stream, events(3), 0) == 3
        assert flaky.append(stream, events(1), 3) == 4
    assert [e.version for e in flaky.read(stream)] == [1, 2, 3, 4]


def test_an_append_that_lost_to_another_writer_is_reported_as_a_conflict(
    flaky: RepliesLost,
) -> None:
    stream = new_stream()
    flaky.append(stream, events(1), 0)
    flaky.append(stream, events(1), 1)  # another writer got version 2 first
    with replies_lost(flaky, applied=True), pytest.raises(ConcurrencyConflict):
        flaky.append(stream, events(1), 1)


def test_an_append_that_never_applied_is_retried_then_reported_unavailable(
    flaky: RepliesLost,
) -> None:
    stream = new_stream()
    with replies_lost(flaky, applied=False), pytest.raises(Unavailable):
        flaky.append(stream, events(1), 0)
    assert flaky.stream_version(stream) == 0


def test_claims_leases_and_names_settle_their_unknown_outcomes(flaky: RepliesLost) -> None:
    key = new_stream("claim")
    flaky.define_claim(key, capacity=2)
    with replies_lost(flaky, applied=True):
        claim = flaky.claim_with_retry(key, "holder-a", 2)
        lease = flaky.acquire_lease(key, "engine-a", ttl=10)
        flaky.reserve_name("project", "cluster", key, "owner-a")
    assert flaky.get_claim(key) == claim
    assert flaky.get_lease(key) == lease
    assert flaky.name_owner("project", "cluster", key) == "owner-a"


# -- the real node timing out ------------------------------------------------------------------

NODE_PID_FILE = ROOT / ".cache" / "cassandra-nodes" / "node1" / "cassandra.pid"


@contextmanager
def node_frozen(seconds: float) -> Iterator[None]:
    """The Cassandra node stopped (SIGSTOP) for ``seconds``, as a long GC pause or an
    overloaded host stops it: requests reach its socket and wait there."""
    if not NODE_PID_FILE.exists():
        pytest.skip("the node was not started by tools/cassandra (no pid file to pause)")
    pid = int(NODE_PID_FILE.read_text().strip())
    os.kill(pid, signal.SIGSTOP)
    thaw = threading.Timer(seconds, os.kill, (pid, signal.SIGCONT))
    thaw.start()
    try:
        yield
    finally:
        thaw.join()
        os.kill(pid, signal.SIGCONT)


class Settling(CassandraStore):
    """The real store, counting the appends whose outcome it had to find out."""

    settled = 0

    def _settle_append(self, *args: Any, **kwargs: Any) -> int:
        self.settled += 1
        return super()._settle_append(*args, **kwargs)


def test_an_append_the_frozen_node_answers_too_late_is_settled_as_applied() -> None:
    require_backend("cassandra")
    # The driver gives up after 1.5 s, the node wakes after 2.5 s and applies the LWT that
    # waited in its socket: the store's own timeout mapping and SERIAL read find that out.
    store = Settling(parse_store_url(CASSANDRA_TEST_URL + "&request_timeout=1.5"
                                     "&feed_relay=off")[1]["config"])
    try:
        stream = new_stream()
        store.append(stream, events(2), 0)  # connected, and the append's statements
        store.append(stream, events(2), 2)  # prepared, before the pause
        with node_frozen(2.5):
            version = store.append(stream, events(2), 4)

        assert store.settled == 1
        assert version == 6
        assert [e.version for e in store.read(stream)] == [1, 2, 3, 4, 5, 6]
    finally:
        store.close()
