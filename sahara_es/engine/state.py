"""A workflow's state: the fold of its events, and the questions the engine asks of it."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from sahara_es.engine.flow import TaskSpec
from sahara_es.events import Aggregate, DomainEvent, RecordedEvent, registry
from sahara_es.events import workflow as ev


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
        self.apply_event(registry.decode(event))
        self.version = event.version

    def apply_event(self, event: DomainEvent) -> None:
        match event:
            case ev.WorkflowStarted():
                self.workflow_type = event.workflow_type
                self.params = event.params
                self.rollback_on_cancel = event.rollback_on_cancel
                self._add_tasks(event.tasks)
            case ev.WorkflowOwned():
                self.owner, self.epoch = event.engine, event.epoch
            case ev.TasksSpawned():
                self._add_tasks(event.tasks)
                self.children.setdefault(event.parent, []).extend(t["id"] for t in event.tasks)
            case ev.TasksOffered():
                for task_id, attempt in event.attempts.items():
                    task = self.tasks[task_id]
                    task.status, task.attempt = TaskStatus.OFFERED, attempt
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
                if self.status is WorkflowStatus.RUNNING and self.rollback_on_cancel:
                    self.status = WorkflowStatus.REVERTING
            case ev.WorkflowFailed():
                self.failure = Failure(event.task_id, event.error)
                self.status = WorkflowStatus.REVERTING
            case ev.WorkflowSucceeded():
                self.status = WorkflowStatus.SUCCEEDED
            case ev.WorkflowRolledBack():
                self.status = WorkflowStatus.ROLLED_BACK
            case ev.WorkflowRollbackFailed():
                self.failure = Failure(event.task_id, event.error)
                self.status = WorkflowStatus.ROLLBACK_FAILED
            case ev.WorkflowCancelled():
                self.status = WorkflowStatus.CANCELLED

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


