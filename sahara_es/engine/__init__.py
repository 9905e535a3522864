"""The durable workflow engine: tasks in plain Python, state folded from events, single
ownership by fenced leases, takeover, rollback, and tasks spread over engines."""

from sahara_es.engine.client import load_workflow, request_cancel, start_workflow, wait_for
from sahara_es.engine.engine import Engine, EngineConfig
from sahara_es.engine.flow import (
    Flow,
    LeaseExpired,
    OutcomeUnknown,
    PermanentFailure,
    RetryPolicy,
    Spawn,
    Task,
    TaskContext,
    task_type,
    workflow_type,
)
from sahara_es.engine.state import TaskStatus, WorkflowState, WorkflowStatus

__all__ = [
    "Engine",
    "EngineConfig",
    "Flow",
    "LeaseExpired",
    "OutcomeUnknown",
    "PermanentFailure",
    "RetryPolicy",
    "Spawn",
    "Task",
    "TaskContext",
    "TaskStatus",
    "WorkflowState",
    "WorkflowStatus",
    "load_workflow",
    "request_cancel",
    "start_workflow",
    "task_type",
    "wait_for",
    "workflow_type",
]
