"""The writer of a workflow's stream: a write nobody waits for may linger for company; one
that someone waits for leaves at once, taking what lingered with it (SQLite store)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from sahara_es.engine.writer import FencedWriter
from sahara_es.events import Metadata, NewEvent
from sahara_es.events import workflow as ev
from sahara_es.store import Store, open_store


class CountingAppends:
    def __init__(self, store: Store) -> None:
        self.store, self.appends = store, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    def append(self, stream_id: str, events: Sequence[NewEvent], expected: int,
               **kwargs: Any) -> int:
        self.appends += 1
        return self.store.append(stream_id, events, expected, **kwargs)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[CountingAppends]:
    opened = open_store(f"sqlite:///{tmp_path}/w.db", upgrade=True)
    yield CountingAppends(opened)
    opened.close()


def writer(store: CountingAppends, linger: float) -> FencedWriter:
    lease = store.acquire_lease("workflow-w", "engine", ttl=60)
    return FencedWriter(store, "workflow-w", 0, lease, Metadata,  # type: ignore[arg-type]
                        linger=linger)


def outcome(task: str) -> ev.TaskSucceeded:
    return ev.TaskSucceeded(task, 1, None, "engine")


def test_writes_nobody_waits_for_share_one_append(store: CountingAppends) -> None:
    w = writer(store, linger=0.5)
    first = w.write([outcome("a")], urgent=False)
    second = w.write([outcome("b")], urgent=False)
    assert second.result(timeout=10) == 2 and first.result() == 2
    assert store.appends == 1
    w.close()


def test_an_urgent_write_leaves_at_once_with_what_lingered(store: CountingAppends) -> None:
    w = writer(store, linger=600)
    lingering = w.write([outcome("a")], urgent=False)
    urgent = w.write([ev.TaskStarted("b", 1, "engine", 1)])
    assert urgent.result(timeout=10) == 2 and lingering.result(timeout=1) == 2
    assert store.appends == 1
    w.close()


def test_closing_writes_what_lingers(store: CountingAppends) -> None:
    w = writer(store, linger=600)
    lingering = w.write([outcome("a")], urgent=False)
    w.close(timeout=10)
    assert lingering.result(timeout=1) == 1
