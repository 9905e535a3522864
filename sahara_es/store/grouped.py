"""Group commit of single-partition inserts: concurrent writers share one unlogged batch.

A write to a partition with nothing in flight goes out at once, on its own, so a lone writer
waits no longer than before. Writes that arrive while that partition has a request in flight
join the partition's next batch, which goes out, as one ``UNLOGGED`` batch, as soon as the
request in flight completes. There are no timers and no threads of our own: the driver's
completion callback sends the next batch.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from cassandra.cluster import Session
from cassandra.query import BatchStatement, BatchType, Statement

from sahara_es.store.errors import StoreError


class Batch(Future[None]):
    """Statements that go out in one request; resolves when that request succeeds or fails.

    ``sent`` is set once the request is handed to the driver (or failed before that).
    """

    def __init__(self, statement: Statement) -> None:
        super().__init__()
        self.statements = [statement]
        self.sent = threading.Event()


@dataclass
class _Partition:
    queued: list[Batch] = field(default_factory=list)
    in_flight: int = 0


class GroupCommit:
    """Sends inserts that share a partition key together, one request per batch.

    Every statement written under one ``partition`` key must write that one Cassandra
    partition: a single-partition unlogged batch is applied as one mutation, cheaply.
    """

    MAX_BATCH = 16
    """Statements per batch: a feed entry is ~150 bytes, so a batch stays
    below Cassandra's ``batch_size_warn_threshold`` (5 KiB)."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self._lock = threading.Lock()
        self._partitions: dict[Hashable, _Partition] = {}
        self._closed = False

    def write(self, partition: Hashable, statement: Statement) -> Batch:
        """Queue ``statement``; wait on the returned batch's ``sent`` before relying on its
        order on the wire, and on its result for it to be written."""
        with self._lock:
            if self._closed:
                raise StoreError("the store is closed")
            state = self._partitions.setdefault(partition, _Partition())
            if state.in_flight:
                last = state.queued[-1] if state.queued else None
                if last is not None and len(last.statements) < self.MAX_BATCH:
                    last.statements.append(statement)
                    return last
                batch = Batch(statement)
                state.queued.append(batch)
                return batch
            batch = Batch(statement)
            state.in_flight = 1
        self._send(partition, [batch])
        return batch

    def close(self) -> None:
        """Fail the batches not sent yet; requests in flight end with the session."""
        with self._lock:
            self._closed = True
            queued = [batch for state in self._partitions.values() for batch in state.queued]
            self._partitions.clear()
        for batch in queued:
            batch.set_exception(StoreError("the store closed before this write was sent"))
            batch.sent.set()

    def _send(self, partition: Hashable, batches: list[Batch]) -> None:
        for batch in batches:
            request: Any = batch.statements[0]
            if len(batch.statements) > 1:
                request = BatchStatement(batch_type=BatchType.UNLOGGED)
                for statement in batch.statements:
                    request.add(statement)
            try:
                future = self._session.execute_async(request)
            except Exception as error:
                batch.sent.set()
                self._finished(error, partition, batch)
                continue
            batch.sent.set()
            future.add_callbacks(self._finished, self._finished,
                                 callback_args=(partition, batch),
                                 errback_args=(partition, batch))

    def _finished(self, outcome: Any, partition: Hashable, batch: Batch) -> None:
        """Driver callback (result or error): send what queued meanwhile, then resolve."""
        with self._lock:
            state = self._partitions.get(partition)
            queued: list[Batch] = []
            if state is not None:
                state.in_flight -= 1
                if not state.in_flight:
                    if state.queued:
                        queued, state.queued = state.queued, []
                        state.in_flight = len(queued)
                    else:
                        del self._partitions[partition]
        self._send(partition, queued)
        if isinstance(outcome, BaseException):
            batch.set_exception(outcome)
        else:
            batch.set_result(None)
