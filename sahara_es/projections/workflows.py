"""The ``workflows`` read model: one row per workflow (type, status, owner, epoch, task counts,
failure), from the engine's events in ``workflow-<id>`` streams.

It follows the engine's fold (``engine/state.py``) for what a list of workflows shows, with
no engine import: projections and the engine are separate layers.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from sahara_es.events import RecordedEvent, registry
from sahara_es.events import workflow as ev
from sahara_es.projections.base import APPLIED, Doc, Projection

_FINISHED = {
    ev.WorkflowSucceeded: "succeeded",
    ev.WorkflowRolledBack: "rolled_back",
    ev.WorkflowCancelled: "cancelled",
}
_TASK_STATUS: dict[type, str] = {
    ev.TaskStarted: "running",
    ev.TaskSucceeded: "succeeded",
    ev.TaskFailed: "failed",
    ev.TaskRetried: "pending",
    ev.TaskReverting: "reverting",
    ev.TaskReverted: "reverted",
}


class WorkflowsProjection(Projection):
    name = "workflows"

    def key(self, event: RecordedEvent) -> str | None:
        if event.category != "workflow" or not registry.known(event.type):
            return None
        return event.stream_id.split("-", 1)[1]

    def evolve(self, doc: Doc | None, event: RecordedEvent) -> Doc | None:
        row: dict[str, Any] = {k: v for k, v in (doc or {}).items() if k != APPLIED}
        tasks: dict[str, str] = dict(row.get("task_status", {}))
        fact = registry.decode(event)
        match fact:
            case ev.WorkflowStarted():
                row.update(workflow_id=self.key(event), type=fact.workflow_type,
                           status="running", owner=None, epoch=0, failure=None,
                           project=event.metadata.project_id, actor=event.metadata.actor,
                           started_at=event.metadata.occurred_at.isoformat(),
                           rollback_on_cancel=fact.rollback_on_cancel,
                           home_region=fact.home_region, owner_region=None)
                tasks.update({t["id"]: "pending" for t in fact.tasks})
            case ev.WorkflowOwned():
                row.update(owner=fact.engine, epoch=fact.epoch, owner_region=fact.region)
            case ev.WorkflowTakenOver():
                row["takeovers"] = [*row.get("takeovers", []), {
                    "engine": fact.engine, "epoch": fact.epoch,
                    "from_region": fact.from_region, "to_region": fact.to_region}]
            case ev.TasksSpawned():
                tasks.update({t["id"]: "pending" for t in fact.tasks})
            case ev.TasksOffered():
                tasks.update({task_id: "offered" for task_id in fact.attempts})
            case ev.TaskOfferWithdrawn():
                tasks[fact.task_id] = "pending"
            case ev.TaskRevertFailed() if fact.final:
                tasks[fact.task_id] = "revert_failed"
            case ev.CancelRequested():
                if row.get("status") == "running" and row.get("rollback_on_cancel", True):
                    row["status"] = "reverting"
            case ev.WorkflowFailed():
                row.update(status="reverting", failure={"task_id": fact.task_id,
                                                        "error": fact.error})
            case ev.WorkflowRollbackFailed():
                row.update(status="rollback_failed", failure={"task_id": fact.task_id,
                                                              "error": fact.error})
            case _ if type(fact) in _FINISHED:
                row["status"] = _FINISHED[type(fact)]
            case (ev.TaskStarted() | ev.TaskSucceeded() | ev.TaskFailed() | ev.TaskRetried()
                  | ev.TaskReverting() | ev.TaskReverted()):
                tasks[fact.task_id] = _TASK_STATUS[type(fact)]
        row.update(task_status=tasks, tasks=dict(sorted(Counter(tasks.values()).items())),
                   version=event.version, updated_at=event.metadata.occurred_at.isoformat())
        return row
