"""Starting, cancelling and watching workflows: what the API and the CLI call."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable
from typing import Any

from sahara_es.engine.crashpoints import WORKFLOW_RECORDED, crash_point
from sahara_es.engine.flow import plan
from sahara_es.engine.runner import cancel_stream
from sahara_es.engine.state import FINISHING_EVENTS, WORKFLOW_PREFIX, WorkflowState
from sahara_es.engine.wakeups import wakeups_of
from sahara_es.events import Metadata, RecordedEvent, registry
from sahara_es.events import workflow as ev
from sahara_es.store import ConcurrencyConflict, Store
from sahara_es.store.serialization import as_recorded

Take = Callable[[str, RecordedEvent], bool]
"""An engine of this process that may run a workflow just recorded: given its id and its
``WorkflowStarted`` as recorded, it takes the lease and runs it, or says no."""


def start_workflow(store: Store, workflow_type: str, params: dict[str, Any] | None = None, *,
                   workflow_id: str | None = None, metadata: Metadata | None = None,
                   homed: bool = True, home_region: str | None = None,
                   take: Take | None = None) -> str:
    """Record the workflow and its planned graph; an engine is woken to take it (else the
    first engine to sweep does).

    Its home region is the region of ``store`` (the accepting process's) unless ``home_region``
    names it (the region of the resource it works on): engines of that region run it, others
    only once that region's engines are all gone. ``homed=False``: a global workflow, which
    the engines of every region take alike.

    ``take``: an engine of this process that may run it at once (the handoff's own, when it
    has room): ``take(workflow_id, started)`` takes its lease and runs it (one lease write,
    where an offer costs two, the ``workflow_ready`` cast and the taking engine's reads and
    fence), or says no: then it is offered. ``started`` is the ``WorkflowStarted`` just
    recorded, so that the taker need not read it back.

    ``ConcurrencyConflict`` if ``workflow_id`` was started already. A crash between the
    record and its lease leaves no orphan: the engines' handoff gives a lease to every
    workflow it sees started without one (``adopt``)."""
    params = dict(params or {})
    flow = plan(workflow_type, params)
    workflow_id = workflow_id or uuid.uuid4().hex
    stream = f"{WORKFLOW_PREFIX}{workflow_id}"
    started = ev.WorkflowStarted(workflow_type, params, [s.to_data() for s in flow.specs],
                                 flow.rollback_on_cancel,
                                 home_region=(home_region or store.region) if homed else None)
    metadata = metadata or Metadata(correlation_id=workflow_id)
    recorded = registry.new_event(started, metadata)
    store.append(stream, [recorded], 0)
    crash_point(WORKFLOW_RECORDED, workflow_id)
    if take is not None and take(workflow_id, as_recorded(stream, 1, recorded)):
        return workflow_id
    if _offer(store, stream):
        wakeups_of(store).workflow_ready(workflow_id)
    return workflow_id


def start_once(store: Store, workflow_type: str, params: dict[str, Any], workflow_id: str, *,
               metadata: Metadata | None = None, home_region: str | None = None,
               take: Take | None = None) -> bool:
    """Start the workflow unless it was started already; either way it ends up where engines
    find it (``adopt``). Whether this call started it."""
    try:
        start_workflow(store, workflow_type, params, workflow_id=workflow_id,
                       metadata=metadata, home_region=home_region, take=take)
        return True
    except ConcurrencyConflict:
        adopt(store, workflow_id)
        return False


def adopt(store: Store, workflow_id: str) -> bool:
    """Give a started, unfinished workflow that has no lease a released one, so that the
    engines' sweep (which lists leases, not streams) finds it: its submitter died between
    the record and the lease. Whether it had to."""
    stream = f"{WORKFLOW_PREFIX}{workflow_id}"
    if store.get_lease(stream) is not None:
        return False
    version = store.stream_version(stream)
    if not version:
        return False
    first = next(iter(store.read(stream, 1, to_version=1)))
    last = next(iter(store.read(stream, version, to_version=version)))
    if first.type != ev.WorkflowStarted.event_type or last.type in FINISHING_EVENTS:
        return False  # not a workflow, or one whose owner deleted the lease when it finished
    if not _offer(store, stream):
        return False
    wakeups_of(store).workflow_ready(workflow_id)
    return True


def _offer(store: Store, stream: str) -> bool:
    """A released lease is how engines find work: the sweep lists leases, not streams. It is
    made never held (epoch 0), in one write, so the engine that takes it holds epoch 1 and
    need not fence the stream: no earlier holder could append. One there already (an engine
    took it, or the handoff adopted it): nothing to do."""
    return store.offer_lease(stream)


def request_cancel(store: Store, workflow_id: str, reason: str = "") -> None:
    """Ask the owner to stop at the next task boundary (idempotent)."""
    with contextlib.suppress(ConcurrencyConflict):  # asked already
        store.append(cancel_stream(workflow_id),
                     [registry.new_event(ev.CancelRequested(reason))], 0)
    wakeups_of(store).cancel_requested(workflow_id)


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
