"""The workflow engine's events: a workflow's state is nothing but the fold of these.

A workflow lives in the stream ``workflow-<id>``; only the engine holding its lease appends
there, fenced. A task offered to other engines is claimed in its own stream
``taskrun-<workflow id>.<task id>.<attempt>``: the claim is the append of version 1 (one
winner); the claimer's TaskStarted, TaskFailed, TaskRetried and TaskSucceeded follow it
there, and the owner records the claim and the final outcome in the workflow's stream.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sahara_es.events.registry import DomainEvent, registry

TaskSpecData = dict[str, Any]
"""A task as recorded: ``{"id", "type", "args", "requires"}`` (see ``engine.flow.TaskSpec``)."""


@registry.event("WorkflowStarted")
@dataclass(frozen=True)
class WorkflowStarted(DomainEvent):
    workflow_type: str
    params: dict[str, Any]
    tasks: list[TaskSpecData]
    rollback_on_cancel: bool = True
    home_region: str | None = None
    """Where the workflow's resources live: the region of the process that started it
    (``None`` on a store of one site). Engines of other regions take it over only when
    that region's engines are all gone (doc/regions.rst)."""

    def to_data(self) -> dict[str, Any]:
        data = super().to_data()
        if data["home_region"] is None:
            del data["home_region"]  # a single-site workflow is recorded as it always was
        return data


@registry.event("WorkflowOwned")
@dataclass(frozen=True)
class WorkflowOwned(DomainEvent):
    """An engine took the workflow (first start or takeover) under lease ``epoch``."""

    engine: str
    epoch: int
    region: str | None = None


@registry.event("WorkflowTakenOver")
@dataclass(frozen=True)
class WorkflowTakenOver(DomainEvent):
    """An engine of ``to_region`` took the workflow over from ``from_region`` (its previous
    owner's region, else its home) because no engine of its home region was left."""

    engine: str
    epoch: int
    from_region: str
    to_region: str
    home_region: str


@registry.event("TasksSpawned")
@dataclass(frozen=True)
class TasksSpawned(DomainEvent):
    """Tasks added by a task's result; tasks that required ``parent`` wait for them too."""

    parent: str
    tasks: list[TaskSpecData]


@registry.event("TasksOffered")
@dataclass(frozen=True)
class TasksOffered(DomainEvent):
    """Ready tasks any engine may claim, each at its ``attempt``."""

    attempts: dict[str, int]


@registry.event("TaskOfferWithdrawn")
@dataclass(frozen=True)
class TaskOfferWithdrawn(DomainEvent):
    """The owner took back an offer nobody claimed (its claim stream says so first): the task
    is ready again, to be started here like any other."""

    task_id: str
    attempt: int


@registry.event("TaskStarted")
@dataclass(frozen=True)
class TaskStarted(DomainEvent):
    task_id: str
    attempt: int
    engine: str
    epoch: int
    run: str | None = None  # the claim stream, when another engine claimed the task


@registry.event("TaskSucceeded")
@dataclass(frozen=True)
class TaskSucceeded(DomainEvent):
    task_id: str
    attempt: int
    result: Any
    engine: str
    reconciled: bool = False
    duration: float = 0.0


@registry.event("TaskFailed")
@dataclass(frozen=True)
class TaskFailed(DomainEvent):
    task_id: str
    attempt: int
    error: str
    """The error's class and message; when its class said it was not retryable, that too."""
    retryable: bool
    """False for a ``PermanentFailure`` or an error flagged not retryable: no retry followed
    whatever the task's policy allowed."""
    engine: str
    final: bool = True  # False when a TaskRetried follows
    duration: float = 0.0


@registry.event("TaskRetried")
@dataclass(frozen=True)
class TaskRetried(DomainEvent):
    task_id: str
    next_attempt: int
    delay: float


@registry.event("TaskReverting")
@dataclass(frozen=True)
class TaskReverting(DomainEvent):
    task_id: str
    attempt: int
    engine: str


@registry.event("TaskReverted")
@dataclass(frozen=True)
class TaskReverted(DomainEvent):
    task_id: str
    engine: str


@registry.event("TaskRevertFailed")
@dataclass(frozen=True)
class TaskRevertFailed(DomainEvent):
    task_id: str
    attempt: int
    error: str
    final: bool
    engine: str


@registry.event("CancelRequested")
@dataclass(frozen=True)
class CancelRequested(DomainEvent):
    reason: str = ""


@registry.event("WorkflowSucceeded")
@dataclass(frozen=True)
class WorkflowSucceeded(DomainEvent):
    results: dict[str, Any] = field(default_factory=dict)


@registry.event("WorkflowFailed")
@dataclass(frozen=True)
class WorkflowFailed(DomainEvent):
    """A task failed beyond its retry policy: rollback starts."""

    task_id: str
    error: str


@registry.event("WorkflowRolledBack")
@dataclass(frozen=True)
class WorkflowRolledBack(DomainEvent):
    reverted: list[str]


@registry.event("WorkflowRollbackFailed")
@dataclass(frozen=True)
class WorkflowRollbackFailed(DomainEvent):
    task_id: str
    error: str


@registry.event("WorkflowCancelled")
@dataclass(frozen=True)
class WorkflowCancelled(DomainEvent):
    rolled_back: bool


# -- the claim stream of an offered task ---------------------------------------------------


@registry.event("TaskClaimed")
@dataclass(frozen=True)
class TaskClaimed(DomainEvent):
    engine: str


@registry.event("TaskRunAbandoned")
@dataclass(frozen=True)
class TaskRunAbandoned(DomainEvent):
    """In a claim stream: nobody's outcome is taken from here on. The owner wrote it after a
    claimer that stopped heartbeating (its outcome is refused), or to withdraw an offer nobody
    claimed; a claimer wrote it when it gave its run up."""

    reason: str
