"""A workflow's state: the fold of its events, and the questions the engine asks of it.

A workflow's status moves only along ``WORKFLOW_TRANSITIONS`` (TaskFlow's way: an explicit
table): the runner folds each event before it writes it, so an event that would move the
status elsewhere is refused (``IllegalTransition``) and never written. A recorded history is
folded as it is.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from sahara_es.engine.flow import TaskSpec
from sahara_es.events import Aggregate, DomainEvent, RecordedEvent, registry
from sahara_es.events import workflow as ev
from sahara_es.events.statuses import Transition, TransitionTable

WORKFLOW_PREFIX = "workflow-"
"""A workflow's stream is ``workflow-<id>``, and so is the name of the lease its owner holds."""


class TaskStatus(enum.StrEnum):
    PENDING = "pending"
    OFFERED = "offered"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REVERTING = "reverting"
    REVERTED = "reverted"
    REVERT_FAILED = "revert_failed"


class WorkflowStatus(enum.StrEnum):
    RUNNING = "running"
    REVERTING = "reverting"  # a task failed, or a cancel asked for a rollback
    SUCCEEDED = "succeeded"
    ROLLED_BACK = "rolled_back"
    ROLLBACK_FAILED = "rollback_failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self not in (WorkflowStatus.RUNNING, WorkflowStatus.REVERTING)


_W = WorkflowStatus

WORKFLOW_TRANSITIONS: TransitionTable[WorkflowStatus] = TransitionTable(
    "workflow status", tuple(WorkflowStatus), (
        Transition(None, _W.RUNNING, "WorkflowStarted: the workflow is submitted"),
        Transition(_W.RUNNING, _W.SUCCEEDED, "WorkflowSucceeded: every task succeeded"),
        Transition(_W.RUNNING, _W.REVERTING,
                   "WorkflowFailed: a task failed beyond its retry policy (or at once, not"
                   " retryable); or CancelRequested, when the flow rolls back on cancel"),
        Transition(_W.RUNNING, _W.CANCELLED,
                   "WorkflowCancelled: a cancel stopped it, and the flow does not roll back"),
        Transition(_W.REVERTING, _W.ROLLED_BACK,
                   "WorkflowRolledBack: every succeeded task was reverted"),
        Transition(_W.REVERTING, _W.ROLLBACK_FAILED,
                   "WorkflowRollbackFailed: a revert failed beyond its retries"),
        Transition(_W.REVERTING, _W.CANCELLED,
                   "WorkflowCancelled: a cancel's rollback is done"),
    ))
"""Every status change of a workflow; succeeded, rolled back, rollback failed and cancelled
are final."""


def check_workflow_transition(source: str | None, target: str, *, subject: str = "") -> None:
    """``IllegalTransition`` unless a workflow may go from ``source`` to ``target``."""
    WORKFLOW_TRANSITIONS.check(source, target, subject=subject)


FINISHING_EVENTS = {
    ev.WorkflowSucceeded.event_type, ev.WorkflowRolledBack.event_type,
    ev.WorkflowRollbackFailed.event_type, ev.WorkflowCancelled.event_type,
}


@dataclass
class TaskState:
    spec: TaskSpec
    status: TaskStatus = TaskStatus.PENDING
    attempt: int = 1
    result: Any = None
    engine: str | None = None
    run: str | None = None
    intent: dict[str, Any] | None = None
    error: str | None = None


@dataclass
class Failure:
    task_id: str
    error: str


class WorkflowState(Aggregate):
    """Folded from ``workflow-<id>``. ``apply`` takes domain events, so an engine folds what it
    writes as it writes it, and a replay folds what it reads."""

    def __init__(self, stream_id: str) -> None:
        super().__init__(stream_id)
        self.workflow_type = ""
        self.project: str | None = None
        """The project the workflow works for (its WorkflowStarted's metadata): engines share
        their slots fairly between projects."""
        self.params: dict[str, Any] = {}
        self.rollback_on_cancel = True
        self.status = WorkflowStatus.RUNNING
        self.tasks: dict[str, TaskState] = {}
        self.children: dict[str, list[str]] = {}
        self.succeeded_order: list[str] = []
        self.owner: str | None = None
        self.owner_region: str | None = None
        self.home_region: str | None = None
        self.epoch = 0
        self.cancel_requested = False
        self.failure: Failure | None = None

    @property
    def workflow_id(self) -> str:
        return self.stream_id.split("-", 1)[1]

    @property
    def started(self) -> bool:
        return bool(self.workflow_type)

    def fold(self, event: RecordedEvent) -> None:
        if event.version != self.version + 1:
            raise ValueError(f"{self.stream_id}: v{event.version} does not follow v{self.version}")
        if event.version == 1:
            self.project = event.metadata.project_id
        self._apply(registry.decode(event))  # a fact: folded as recorded
        self.version = event.version

    def status_after(self, event: DomainEvent) -> WorkflowStatus:
        """The status once ``event`` is folded (the only place the fold decides it)."""
        match event:
            case ev.CancelRequested() if (self.status is WorkflowStatus.RUNNING
                                          and self.rollback_on_cancel):
                return WorkflowStatus.REVERTING
            case ev.WorkflowFailed():
                return WorkflowStatus.REVERTING
            case ev.WorkflowSucceeded():
                return WorkflowStatus.SUCCEEDED
            case ev.WorkflowRolledBack():
                return WorkflowStatus.ROLLED_BACK
            case ev.WorkflowRollbackFailed():
                return WorkflowStatus.ROLLBACK_FAILED
            case ev.WorkflowCancelled():
                return WorkflowStatus.CANCELLED
        return self.status

    def apply_event(self, event: DomainEvent) -> None:
        """Fold an event about to be written: refused (``IllegalTransition``), and the state
        left as it was, if it would move the status along no allowed transition."""
        target = self.status_after(event)
        if target is not self.status:
            check_workflow_transition(self.status, target, subject=self.stream_id)
        self._apply(event)

    def _apply(self, event: DomainEvent) -> None:
        status = self.status_after(event)
        match event:
            case ev.WorkflowStarted():
                self.workflow_type = event.workflow_type
                self.params = event.params
                self.rollback_on_cancel = event.rollback_on_cancel
                self.home_region = event.home_region
                self._add_tasks(event.tasks)
            case ev.WorkflowOwned():
                self.owner, self.epoch = event.engine, event.epoch
                self.owner_region = event.region
            case ev.TasksSpawned():
                self._add_tasks(event.tasks)
                self.children.setdefault(event.parent, []).extend(t["id"] for t in event.tasks)
            case ev.TasksOffered():
                for task_id, attempt in event.attempts.items():
                    task = self.tasks[task_id]
                    task.status, task.attempt = TaskStatus.OFFERED, attempt
            case ev.TaskOfferWithdrawn():
                self.tasks[event.task_id].status = TaskStatus.PENDING
            case ev.TaskStarted():
                task = self.tasks[event.task_id]
                task.status, task.attempt = TaskStatus.RUNNING, event.attempt
                task.engine, task.run, task.intent = event.engine, event.run, event.to_data()
            case ev.TaskSucceeded():
                task = self.tasks[event.task_id]
                task.status, task.result, task.engine = (
                    TaskStatus.SUCCEEDED, event.result, event.engine)
                self.succeeded_order.append(event.task_id)
            case ev.TaskFailed():
                task = self.tasks[event.task_id]
                task.status, task.error = TaskStatus.FAILED, event.error
            case ev.TaskRetried():
                task = self.tasks[event.task_id]
                task.status, task.attempt = TaskStatus.PENDING, event.next_attempt
                task.run = task.intent = None
            case ev.TaskReverting():
                self.tasks[event.task_id].status = TaskStatus.REVERTING
            case ev.TaskReverted():
                self.tasks[event.task_id].status = TaskStatus.REVERTED
            case ev.TaskRevertFailed():
                task = self.tasks[event.task_id]
                task.error = event.error
                if event.final:
                    task.status = TaskStatus.REVERT_FAILED
            case ev.CancelRequested():
                self.cancel_requested = True
            case ev.WorkflowFailed() | ev.WorkflowRollbackFailed():
                self.failure = Failure(event.task_id, event.error)
        self.status = status

    def _add_tasks(self, specs: list[dict[str, Any]]) -> None:
        for data in specs:
            spec = TaskSpec.from_data(data)
            self.tasks[spec.id] = TaskState(spec)

    # -- questions ------------------------------------------------------------------------

    def done(self, task_id: str) -> bool:
        """The task succeeded, and so did every task it spawned (transitively)."""
        return self.tasks[task_id].status is TaskStatus.SUCCEEDED and all(
            self.done(child) for child in self.children.get(task_id, ())
        )

    def ready(self) -> list[TaskState]:
        """Pending tasks whose requirements are done, in the order they were added."""
        return [
            task for task in self.tasks.values()
            if task.status is TaskStatus.PENDING
            and all(self.done(r) for r in task.spec.requires)
        ]

    def in_flight(self) -> list[TaskState]:
        return [t for t in self.tasks.values()
                if t.status in (TaskStatus.RUNNING, TaskStatus.OFFERED)]

    def all_succeeded(self) -> bool:
        return all(t.status is TaskStatus.SUCCEEDED for t in self.tasks.values())

    def to_revert(self) -> list[TaskState]:
        """Succeeded tasks, latest first: the reverse of an order their dependencies allowed."""
        return [self.tasks[t] for t in reversed(self.succeeded_order)
                if self.tasks[t].status in (TaskStatus.SUCCEEDED, TaskStatus.REVERTING)]

    def results(self) -> dict[str, Any]:
        return {t.spec.id: t.result for t in self.tasks.values()
                if t.status is TaskStatus.SUCCEEDED}

    def summary(self) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for task in self.tasks.values():
            counts[task.status] = counts.get(task.status, 0) + 1
        return {"workflow_id": self.workflow_id, "type": self.workflow_type,
                "status": str(self.status), "owner": self.owner, "epoch": self.epoch,
                "version": self.version, "tasks": counts,
                "failure": self.failure.__dict__ if self.failure else None}


