"""The API's side of the bus: a store that casts ``requests_recorded`` when a command appends
an event the engines' handoff turns into work, so that the active handoff handles it at once
instead of at its next poll. The cast names the stream and the versions appended, never what
the events say (secrets stay out of messages): the handoff reads them from the store."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any, cast

from sahara_es.engine.wakeups import Wakeups, attach
from sahara_es.events import NewEvent
from sahara_es.store import Store


class _AnnouncingStore:
    """Every ``Store`` method is the wrapped store's; ``append`` also casts."""

    def __init__(self, store: Store, wakeups: Wakeups, event_types: Collection[str]) -> None:
        self._store = store
        self._wakeups = wakeups
        self._event_types = frozenset(event_types)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def append(self, stream_id: str, events: Sequence[NewEvent], expected_version: int,
               *args: Any, **kwargs: Any) -> int:
        version: int = self._store.append(stream_id, events, expected_version, *args,
                                          **kwargs)
        if any(event.type in self._event_types for event in events):
            self._wakeups.requests_recorded(stream_id, version - len(events) + 1, version)
        return version


def announcing(store: Store, wakeups: Wakeups, event_types: Collection[str]) -> Store:
    """``store``, casting ``requests_recorded`` through ``wakeups`` after each append of an
    event of ``event_types`` (the handoff's rules: ``CLUSTER_REQUESTS``). Casts made by the
    engine's client functions on it (a cancel) go through ``wakeups`` too."""
    wrapped = cast(Store, _AnnouncingStore(store, wakeups, event_types))
    attach(wrapped, wakeups)
    return wrapped
