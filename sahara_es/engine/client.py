"""Starting, cancelling and watching workflows: what the API and the CLI call."""

from __future__ import annotations

import contextlib
import time
import uuid
from typing import Any

from sahara_es.engine.engine import WORKFLOW_PREFIX
from sahara_es.engine.flow import plan
from sahara_es.engine.runner import cancel_stream
from sahara_es.engine.state import WorkflowState
from sahara_es.events import Metadata, registry
from sahara_es.events import workflow as ev
from sahara_es.store import ConcurrencyConflict, Store


def start_workflow(store: Store, workflow_type: str, params: dict[str, Any] | None = None, *,
                   workflow_id: str | None = None, metadata: Metadata | None = None) -> str:
    """Record the workflow and its planned graph; the first engine to sweep takes it."""
    params = dict(params or {})
    flow = plan(workflow_type, params)
    workflow_id = workflow_id or uuid.uuid4().hex
    stream = f"{WORKFLOW_PREFIX}{workflow_id}"
    started = ev.WorkflowStarted(workflow_type, params, [s.to_data() for s in flow.specs],
                                 flow.rollback_on_cancel)
    metadata = metadata or Metadata(correlation_id=workflow_id)
    store.append(stream, [registry.new_event(started, metadata)], 0)
    # A released lease is how engines find work: the sweep lists leases, not streams.
    store.release_lease(store.acquire_lease(stream, "submitter", 1.0))
    return workflow_id


def request_cancel(store: Store, workflow_id: str, reason: str = "") -> None:
    """Ask the owner to stop at the next task boundary (idempotent)."""
    with contextlib.suppress(ConcurrencyConflict):  # asked already
        store.append(cancel_stream(workflow_id),
                     [registry.new_event(ev.CancelRequested(reason))], 0)


def load_workflow(store: Store, workflow_id: str) -> WorkflowState:
    return _catch_up(store, WorkflowState(f"{WORKFLOW_PREFIX}{workflow_id}"))


def _catch_up(store: Store, state: WorkflowState) -> WorkflowState:
    for event in store.read(state.stream_id, state.version + 1):
        state.fold(event)
    return state


def wait_for(store: Store, workflow_id: str, timeout: float = 60.0,
             poll: float = 0.1) -> WorkflowState:
    """The workflow once finished; ``TimeoutError`` with its state if not within ``timeout``.

    Each poll reads only the events written since the last one.
    """
    deadline = time.monotonic() + timeout
    state = WorkflowState(f"{WORKFLOW_PREFIX}{workflow_id}")
    while True:
        _catch_up(store, state)
        if state.status.finished:
            return state
        if time.monotonic() > deadline:
            raise TimeoutError(f"workflow {workflow_id} still {state.summary()}")
        time.sleep(poll)
