"""The durable workflow engine: tasks in plain Python, state folded from events, single
ownership by fenced leases, takeover, rollback, and tasks spread over engines; the handoff
that starts the workflows commands ask for."""

from sahara_es.engine.client import (
    adopt,
    load_workflow,
    request_cancel,
    start_once,
    start_workflow,
    wait_for,
)
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
    WorkGivenBack,
    task_type,
    workflow_type,
)
from sahara_es.engine.handoff import Handoff, WorkflowRequest
from sahara_es.engine.state import TaskStatus, WorkflowState, WorkflowStatus

__all__ = [
    "Engine",
    "EngineConfig",
    "Flow",
    "Handoff",
    "LeaseExpired",
    "OutcomeUnknown",
    "PermanentFailure",
    "RetryPolicy",
    "Spawn",
    "Task",
    "TaskContext",
    "TaskStatus",
    "WorkGivenBack",
    "WorkflowRequest",
    "WorkflowState",
    "WorkflowStatus",
    "adopt",
    "load_workflow",
    "request_cancel",
    "start_once",
    "start_workflow",
    "task_type",
    "wait_for",
    "workflow_type",
]
