"""The one writer of a workflow's stream: fenced appends, in order, batched.

Whatever the workflow's threads record while an append is on the wire goes into the next
append (up to the store's batch limit), so a hundred tasks finishing together cost one or two
writes, not a hundred. A caller that must not act before its events are durable (a task about
to change the world) waits on the future, and its write is ``urgent``: it leaves at once. Other
writes (an idempotent task's start, an outcome) may wait ``linger`` seconds for company, as a
producer's linger does: tasks that end a few milliseconds apart share one append (on Cassandra
one LWT, the store's costliest request) at the price of showing their progress that much later.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future

from sahara_es.events import DomainEvent, Metadata, NewEvent, registry
from sahara_es.store import Lease, Store
from sahara_es.store.base import MAX_APPEND_BATCH


class FencedWriter:
    def __init__(self, store: Store, stream_id: str, version: int, lease: Lease,
                 metadata: Callable[[], Metadata], *, linger: float = 0.0) -> None:
        self.store = store
        self.stream_id = stream_id
        self.version = version
        self.lease = lease
        self._metadata = metadata
        self.linger = linger
        self._queue: list[tuple[list[DomainEvent], Future[int]]] = []
        self._queued = 0  # events in the queue
        self._first_at = 0.0  # when the queue's oldest write came
        self._urgent = False  # a write in the queue is waited for
        self._wake = threading.Condition()
        self._closing = False
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._loop, name=f"writer {stream_id}",
                                        daemon=True)
        self._thread.start()

    def write(self, events: list[DomainEvent], *, urgent: bool = True) -> Future[int]:
        """Queue ``events``; the future gives the stream's version once they are durable.
        ``urgent``: someone waits for that (else the write may linger)."""
        future: Future[int] = Future()
        with self._wake:
            if self.error is not None:
                future.set_exception(self.error)
            elif self._closing:
                future.set_exception(RuntimeError(f"the writer of {self.stream_id} is closed"))
            else:
                if not self._queue:
                    self._first_at = time.monotonic()
                self._queue.append((events, future))
                self._queued += len(events)
                self._urgent = self._urgent or urgent
                self._wake.notify()
        return future

    def close(self, timeout: float = 30) -> None:
        """Write what is queued, then stop."""
        with self._wake:
            self._closing = True
            self._wake.notify()
        self._thread.join(timeout)

    def _take(self) -> list[tuple[list[DomainEvent], Future[int]]]:
        with self._wake:
            while not self._queue and not self._closing:
                self._wake.wait()
            while not (self._urgent or self._closing or self._queued >= MAX_APPEND_BATCH):
                remaining = self._first_at + self.linger - time.monotonic()
                if remaining <= 0:
                    break
                self._wake.wait(remaining)
            taken: list[tuple[list[DomainEvent], Future[int]]] = []
            count = 0
            while self._queue and (
                not taken or count + len(self._queue[0][0]) <= MAX_APPEND_BATCH
            ):
                item = self._queue.pop(0)
                taken.append(item)
                count += len(item[0])
            self._queued -= count
            self._urgent = self._urgent and bool(self._queue)
            return taken

    def _loop(self) -> None:
        while True:
            taken = self._take()
            if not taken:
                return  # closing, and nothing left
            metadata = self._metadata()
            batch = [registry.new_event(e, metadata) for events, _ in taken for e in events]
            try:
                for start in range(0, len(batch), MAX_APPEND_BATCH):
                    chunk: list[NewEvent] = batch[start:start + MAX_APPEND_BATCH]
                    self.version = self.store.append(self.stream_id, chunk, self.version,
                                                     lease=self.lease)
            except BaseException as error:
                with self._wake:
                    self.error = error
                    failed = taken + self._queue
                    self._queue = []
                for _, future in failed:
                    future.set_exception(error)
                return
            for _, future in taken:
                future.set_result(self.version)
