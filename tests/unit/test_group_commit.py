"""The group commit: a lone write goes out at once, concurrent ones share one unlogged batch."""

from __future__ import annotations

from typing import Any

import pytest
from cassandra.query import BatchStatement, BatchType, SimpleStatement

from sahara_es.store.errors import StoreError
from sahara_es.store.grouped import GroupCommit


class Request:
    """A request on the wire, completed by the test as the driver's event loop would."""

    def __init__(self, statement: Any) -> None:
        self.statement = statement
        self.callbacks: tuple[Any, Any, tuple[Any, ...]] | None = None

    def add_callbacks(self, callback: Any, errback: Any, callback_args: tuple[Any, ...] = (),
                      errback_args: tuple[Any, ...] = ()) -> None:
        self.callbacks = (callback, errback, callback_args)

    def succeed(self) -> None:
        assert self.callbacks is not None
        callback, _, args = self.callbacks
        callback([], *args)

    def fail(self, error: Exception) -> None:
        assert self.callbacks is not None
        _, errback, args = self.callbacks
        errback(error, *args)

    @property
    def size(self) -> int:
        return len(self.statement) if isinstance(self.statement, BatchStatement) else 1


class Session:
    def __init__(self) -> None:
        self.sent: list[Request] = []

    def execute_async(self, statement: Any) -> Request:
        self.sent.append(Request(statement))
        return self.sent[-1]


def insert(n: int) -> SimpleStatement:
    return SimpleStatement(f"INSERT INTO feed (bucket, position) VALUES (1, {n})")


def test_a_lone_write_goes_out_at_once_as_itself() -> None:
    session = Session()
    statement = insert(0)
    written = GroupCommit(session).write("feed-1", statement)
    assert [r.statement for r in session.sent] == [statement]
    assert written.sent.is_set() and not written.done()
    session.sent[0].succeed()
    assert written.result(timeout=0) is None


def test_writes_arriving_while_one_is_in_flight_go_out_together_when_it_completes() -> None:
    session = Session()
    group = GroupCommit(session)
    first = group.write("feed-1", insert(0))
    rest = [group.write("feed-1", insert(n)) for n in range(1, 6)]
    assert len(session.sent) == 1
    assert not any(w.sent.is_set() for w in rest)

    session.sent[0].succeed()

    assert first.done() and all(w.sent.is_set() and not w.done() for w in rest)
    batch = session.sent[1].statement
    assert isinstance(batch, BatchStatement) and batch.batch_type == BatchType.UNLOGGED
    assert len(batch) == 5
    session.sent[1].succeed()
    assert all(w.result(timeout=0) is None for w in rest)
    group.write("feed-1", insert(9))
    assert session.sent[2].size == 1  # idle again: the next lone write goes out at once


def test_partitions_do_not_wait_for_each_other() -> None:
    session = Session()
    group = GroupCommit(session)
    group.write("feed-1", insert(0))
    group.write("streams-test", insert(1))
    assert len(session.sent) == 2


def test_a_long_queue_goes_out_in_bounded_batches() -> None:
    session = Session()
    group = GroupCommit(session)
    group.write("feed-1", insert(0))
    for n in range(GroupCommit.MAX_BATCH + 3):
        group.write("feed-1", insert(n))
    session.sent[0].succeed()
    assert [r.size for r in session.sent[1:]] == [GroupCommit.MAX_BATCH, 3]


def test_a_failed_batch_fails_every_write_it_carried() -> None:
    session = Session()
    group = GroupCommit(session)
    group.write("feed-1", insert(0))
    carried = [group.write("feed-1", insert(n)) for n in range(3)]
    session.sent[0].succeed()
    error = RuntimeError("write timeout")
    session.sent[1].fail(error)
    for written in carried:
        assert written.exception(timeout=0) is error


def test_a_request_the_driver_refuses_fails_its_writes_and_releases_the_partition() -> None:
    class Refusing(Session):
        def execute_async(self, statement: Any) -> Request:
            raise RuntimeError("no host available")

    group = GroupCommit(Refusing())
    first = group.write("feed-1", insert(0))
    assert first.sent.is_set() and isinstance(first.exception(timeout=0), RuntimeError)
    second = group.write("feed-1", insert(1))
    assert isinstance(second.exception(timeout=0), RuntimeError)


def test_closing_fails_what_was_not_sent_and_refuses_new_writes() -> None:
    session = Session()
    group = GroupCommit(session)
    group.write("feed-1", insert(0))
    queued = group.write("feed-1", insert(1))
    group.close()
    assert queued.sent.is_set() and isinstance(queued.exception(timeout=0), StoreError)
    with pytest.raises(StoreError):
        group.write("feed-1", insert(2))
    session.sent[0].succeed()  # the request in flight ends without sending anything more
    assert len(session.sent) == 1
