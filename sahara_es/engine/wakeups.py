"""Wake-ups: how engines hear at once of work the store already holds.

The store is the only truth; a wake-up only says "look now" about something already written.
A lost, late or repeated one never loses or doubles work: a lost one is found by the sweep
(the backstop), a repeated or late one finds the work taken, claimed or done and does nothing.

``Wakeups`` is what engines and clients cast through; ``Listener`` is what an engine answers
with. They are declared here, so that the engine never imports a transport: ``LocalWakeups``
dispatches in-process to the engines sharing a store object (all-in-one, tests); the message
bus (``sahara_es.rpc``) implements the same protocol over oslo.messaging, and the command line
attaches it to a store (``attach``).
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import weakref
from collections.abc import Sequence
from typing import Any, Protocol

from sahara_es.store import Store

log = logging.getLogger(__name__)


class Listener(Protocol):
    """What an engine does when woken (``engine.Engine`` is one)."""

    @property
    def engine_id(self) -> str: ...

    def on_workflow_ready(self, workflow_id: str) -> None:
        """A workflow's lease is free (just started, handed back): take it if there is room."""
        ...

    def on_wake(self) -> None:
        """Sweep now."""
        ...

    def on_tasks_offered(self, workflow_id: str, owner: str,
                         task_ids: Sequence[str] = ()) -> None:
        """``owner`` offers tasks of ``workflow_id`` (``task_ids`` to this engine first):
        claim what spare slots allow."""
        ...

    def on_claim_moved(self, workflow_id: str, stream_id: str) -> None:
        """A claim stream of a workflow this engine owns was written (claimed, done)."""
        ...

    def on_cancel_requested(self, workflow_id: str) -> None:
        """Look at the workflow's cancel stream now."""
        ...

    def on_requests_recorded(self, stream_id: str | None = None, from_version: int = 0,
                             to_version: int = 0) -> None:
        """Commands recorded requests: the active handoff reads the feed now, and handles
        ``stream_id``'s events ``from_version`` to ``to_version`` at once when they are next
        in their stream (``engine/handoff.py``, "The fast path")."""
        ...

    def on_capacity(self, engine_id: str, free: int) -> None:
        """``engine_id`` has ``free`` slots: owners may offer it as many tasks."""
        ...


class Wakeups(Protocol):
    """Where wake-ups are cast. Every method returns at once and may lose the message."""

    @property
    def remote(self) -> bool:
        """Whether casts reach engines in other processes: then the sweep may be slower."""
        ...

    @property
    def carries_offers(self) -> bool:
        """Whether offers and claims reach every engine: then owners read claim streams only
        when told (and at the backstop), and others claim when an offer is cast."""
        ...

    def subscribe(self, listener: Listener) -> None: ...

    def unsubscribe(self, listener: Listener) -> None: ...

    def workflow_ready(self, workflow_id: str) -> None:
        """To one engine (any): take this workflow."""
        ...

    def wake_all(self) -> None:
        """To every engine: sweep now."""
        ...

    def tasks_offered(self, workflow_id: str, owner: str, engine_id: str | None = None,
                      task_ids: Sequence[str] = ()) -> None:
        """To ``engine_id`` (every engine when None): the owner offers tasks of this
        workflow, ``task_ids`` to that engine."""
        ...

    def claim_moved(self, owner: str, workflow_id: str, stream_id: str) -> None:
        """To the owner: read this claim stream."""
        ...

    def cancel_requested(self, workflow_id: str) -> None:
        """To every engine: the workflow's cancel was recorded."""
        ...

    def requests_recorded(self, stream_id: str | None = None, from_version: int = 0,
                          to_version: int = 0) -> None:
        """To every engine: commands recorded requests the handoff turns into workflows, the
        events ``from_version`` to ``to_version`` of ``stream_id`` when named (where they
        are, never what they say: the handoff reads them from the store)."""
        ...

    def capacity(self, engine_id: str, free: int) -> None:
        """To every engine: ``engine_id`` has ``free`` slots (offers are pulled, when they
        are carried: an owner offers only what the others said they can take)."""
        ...


class LocalWakeups:
    """In-process dispatch to the engines subscribed here, on one thread of its own (a cast
    returns at once, as on a bus): no broker. Casts to engines in other processes are not
    made (``remote`` and ``carries_offers`` false): those find the work by sweeping and
    reading claim streams, as without a bus."""

    remote = False
    carries_offers = False

    def __init__(self) -> None:
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()
        self._turn = itertools.count()
        self._queue: queue.SimpleQueue[tuple[str, tuple[Any, ...]] | None] = \
            queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def subscribe(self, listener: Listener) -> None:
        with self._lock:
            self._listeners.append(listener)
            if self._thread is None:
                self._thread = threading.Thread(target=self._dispatch, daemon=True,
                                                name="in-process wake-ups")
                self._thread.start()

    def unsubscribe(self, listener: Listener) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)
            if not self._listeners and self._thread is not None:
                self._queue.put(None)
                self._thread = None

    def _dispatch(self) -> None:
        while (item := self._queue.get()) is not None:
            call, args = item
            with self._lock:
                listeners = list(self._listeners)
            if call == "on_workflow_ready" and listeners:
                listeners = [listeners[next(self._turn) % len(listeners)]]
            for listener in listeners:
                try:
                    if call == "on_tasks_offered":
                        workflow_id, owner, to, task_ids = args
                        if listener.engine_id != owner and to in (None, listener.engine_id):
                            listener.on_tasks_offered(workflow_id, owner, task_ids)
                        continue
                    if call == "on_capacity" and listener.engine_id == args[0]:
                        continue
                    if call == "on_claim_moved":
                        if listener.engine_id != args[0]:
                            continue
                        listener.on_claim_moved(*args[1:])
                        continue
                    getattr(listener, call)(*args)
                except Exception:  # a wake-up is a hint: never anyone's failure
                    log.exception("wake-up %s failed on %s", call, listener.engine_id)

    def _cast(self, call: str, *args: Any) -> None:
        if self._thread is not None:
            self._queue.put((call, args))

    def workflow_ready(self, workflow_id: str) -> None:
        self._cast("on_workflow_ready", workflow_id)

    def wake_all(self) -> None:
        self._cast("on_wake")

    def tasks_offered(self, workflow_id: str, owner: str, engine_id: str | None = None,
                      task_ids: Sequence[str] = ()) -> None:
        self._cast("on_tasks_offered", workflow_id, owner, engine_id, tuple(task_ids))

    def claim_moved(self, owner: str, workflow_id: str, stream_id: str) -> None:
        self._cast("on_claim_moved", owner, workflow_id, stream_id)

    def cancel_requested(self, workflow_id: str) -> None:
        self._cast("on_cancel_requested", workflow_id)

    def requests_recorded(self, stream_id: str | None = None, from_version: int = 0,
                          to_version: int = 0) -> None:
        self._cast("on_requests_recorded", stream_id, from_version, to_version)

    def capacity(self, engine_id: str, free: int) -> None:
        self._cast("on_capacity", engine_id, free)


_attached: weakref.WeakKeyDictionary[Store, Wakeups] = weakref.WeakKeyDictionary()
_attached_lock = threading.Lock()


def attach(store: Store, wakeups: Wakeups) -> Wakeups:
    """Make ``wakeups`` what engines and clients on ``store`` (this object) cast through."""
    with _attached_lock:
        _attached[store] = wakeups
    return wakeups


def detach(store: Store) -> None:
    with _attached_lock:
        _attached.pop(store, None)


def wakeups_of(store: Store) -> Wakeups:
    """What casts on ``store`` go through: the attached bus, else in-process dispatch to the
    engines on this same store object."""
    with _attached_lock:
        found = _attached.get(store)
        if found is None:
            found = _attached[store] = LocalWakeups()
        return found
