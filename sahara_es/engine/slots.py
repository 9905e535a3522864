"""An engine's task slots, shared fairly between projects.

A workflow's project is its WorkflowStarted's metadata. One project holds at most its share
of the slots; while another project waits below its fair part (the slots over the projects
waiting), a project above that part takes no more, so the next slot to free goes to the
one waiting. Work without a project (an operator's) is not limited. Reclaiming work (a
delete, a rollback) has the same share of the slots and, beyond it, a few slots of its own
(half of them at most per project, at least one), so that a project whose share is held by
hung tasks can still delete them, and a project deleting many clusters at once still leaves
the others their share and a reclaim slot.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")

WAITING_WINDOW = 1.0
"""Seconds a project refused a slot counts as waiting for one (runners ask every 0.2 s)."""


@dataclass(frozen=True)
class Share:
    """Whose work a slot is for: the workflow's project (None: an operator's, not limited),
    and whether the work reclaims capacity (a delete, a rollback)."""

    project: str | None = None
    reclaims: bool = False


UNLIMITED = Share()


class Slots:
    def __init__(self, total: int, per_project: int, reclaim: int) -> None:
        self.total, self.per_project = total, per_project
        self.reclaim_per_project = max(1, reclaim // 2)
        self._free, self._reclaim_free = total, reclaim
        self._held: Counter[str | None] = Counter()  # project -> ordinary slots held
        self._reclaim_held: Counter[str | None] = Counter()  # project -> reclaim slots held
        self._waiting: dict[str, float] = {}  # project -> when it was last refused a slot
        self._lock = threading.Lock()

    @property
    def free(self) -> int:
        return self._free

    def reserve(self, wanted: int, share: Share = UNLIMITED) -> int:
        """Up to ``wanted`` slots for work of ``share``: as many as are free, within the
        project's share and its fair part; reclaiming work then takes reclaim slots, within
        its project's part of them."""
        if wanted <= 0:
            return 0
        project = share.project
        with self._lock:
            now = time.monotonic()
            room = self._free
            if project is not None:
                room = min(room, self._project_room(project, now))
            taken = max(0, min(wanted, room))
            self._free -= taken
            self._held[project] += taken
            if share.reclaims and taken < wanted:
                extra = self._reclaim_free
                if project is not None:
                    extra = min(extra, self.reclaim_per_project - self._reclaim_held[project])
                extra = max(0, min(wanted - taken, extra))
                self._reclaim_free -= extra
                self._reclaim_held[project] += extra
                taken += extra
            if project is not None:
                if taken < wanted:
                    self._waiting[project] = now
                else:
                    self._waiting.pop(project, None)
            return taken

    def room_for(self, share: Share) -> int:
        """How many ordinary slots work of ``share`` could reserve now."""
        with self._lock:
            room = self._free
            if share.project is not None:
                room = min(room, self._project_room(share.project, time.monotonic()))
            return max(0, room)

    def _project_room(self, project: str, now: float) -> int:
        for key, since in list(self._waiting.items()):
            if now - since > WAITING_WINDOW:
                del self._waiting[key]
        limit = self.per_project
        waiting = set(self._waiting) | {project}
        fair = max(1, self.total // len(waiting))
        if any(self._held[other] < fair for other in waiting - {project}):
            limit = min(limit, fair)  # another project waits below its fair part
        return limit - self._held[project]

    def release(self, count: int, share: Share = UNLIMITED) -> None:
        project = share.project
        with self._lock:
            for _ in range(count):
                if self._reclaim_held[project] > 0:
                    self._reclaim_held[project] -= 1
                    self._reclaim_free += 1
                else:
                    self._held[project] -= 1
                    self._free += 1
            self._held, self._reclaim_held = +self._held, +self._reclaim_held

    def held(self) -> dict[str, int]:
        """Slots each project holds now (ordinary and reclaim ones)."""
        with self._lock:
            held = self._held + self._reclaim_held
            return {p: n for p, n in held.items() if p is not None}


def round_robin(items: Iterable[T], project: Callable[[T], str | None]) -> list[T]:
    """``items`` interleaved by project (each project's in their order): one of each project
    in turn, so that the project listed first does not take everything."""
    queues: dict[str | None, list[T]] = {}
    for item in items:
        queues.setdefault(project(item), []).append(item)
    ordered: list[T] = []
    while queues:
        for key in list(queues):
            ordered.append(queues[key].pop(0))
            if not queues[key]:
                del queues[key]
    return ordered
