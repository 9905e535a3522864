"""An offer nobody claims costs its owner one write, and runs on the owner as any ready task
(both stores, engines in this process).

The owner of a workflow offers the ready tasks it has no slot for while other engines are
alive. When a slot frees here and an offer is still unclaimed, the owner closes its claim
stream (``TaskRunAbandoned``: no claim can win it after that), records ``TaskOfferWithdrawn``
(the task is ready again) and starts it as its own, with no claim and no outcome to read back
from a claim stream. Offers wait ``offer_delay`` after the workflow was taken.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from sahara_es.engine import (
    Engine,
    EngineConfig,
    WorkflowState,
    WorkflowStatus,
    start_workflow,
    wait_for,
)
from sahara_es.engine.engine import engine_lease_resource, events_of
from sahara_es.engine.runner import claim_stream
from sahara_es.events import registry
from sahara_es.events import workflow as ev
from sahara_es.store import Store
from tests.workflows import lines


def a_peer_that_never_claims(store: Store) -> str:
    """Another engine that heartbeats (so the owner offers) and claims nothing."""
    peer = f"peer-{uuid.uuid4().hex[:6]}"
    store.acquire_lease(engine_lease_resource(peer, None), peer, ttl=120)
    return peer


def fan_out(store: Store, effects: Path, tasks: int = 3) -> str:
    return start_workflow(store, "test.fan-out", {"tasks": tasks, "effects": str(effects),
                                                  "sleep": 0.2})


def run_on_one_slot(store: Store, workflow: str, offer_delay: float
                    ) -> tuple[WorkflowState, str]:
    """The workflow run to its end by an engine of one slot; its state and the engine."""
    owner = Engine(store, EngineConfig(concurrency=1, lease_ttl=10, sweep_interval=0.05,
                                       offer_delay=offer_delay)).start()
    try:
        return wait_for(store, workflow, timeout=60), owner.engine_id
    finally:
        owner.stop()


def test_an_offer_nobody_claims_is_withdrawn_and_run_by_its_owner_without_a_claim(
        store: Store, tmp_path: Path) -> None:
    a_peer_that_never_claims(store)
    effects = tmp_path / "effects"
    workflow = fan_out(store, effects)
    state, owner = run_on_one_slot(store, workflow, offer_delay=0.0)

    assert state.status is WorkflowStatus.SUCCEEDED
    assert sorted(lines(effects)) == ["first", "last", "m000", "m001", "m002"]  # each once
    history = events_of(store, f"workflow-{workflow}")
    offered = {t for e in history if isinstance(e, ev.TasksOffered) for t in e.attempts}
    withdrawn = [e.task_id for e in history if isinstance(e, ev.TaskOfferWithdrawn)]
    assert offered and sorted(withdrawn) == sorted(offered)
    for task_id in offered:
        claims = events_of(store, claim_stream(workflow, task_id, 1))
        assert [type(e).__name__ for e in claims] == ["TaskRunAbandoned"]
        assert claims[0].reason == "the owner runs it itself"
        starts = [e for e in history if isinstance(e, ev.TaskStarted) and e.task_id == task_id]
        assert [(s.engine, s.run) for s in starts] == [(owner, None)]
    assert state.tasks["m000"].status.value == "succeeded"


def test_a_new_owner_runs_an_offer_its_predecessor_withdrew_without_recording_it(
        store: Store, tmp_path: Path) -> None:
    effects = tmp_path / "effects"
    workflow = start_workflow(store, "test.chain", {"tasks": 2, "effects": str(effects)})
    stream = f"workflow-{workflow}"
    dead = store.acquire_lease(stream, "dead-owner", ttl=0.3)
    store.fence(stream, dead)
    store.append(stream, [registry.new_event(e) for e in (
        ev.WorkflowOwned("dead-owner", dead.epoch), ev.TasksOffered({"t000": 1}))], 1,
        lease=dead)
    claim = claim_stream(workflow, "t000", 1)
    store.append(claim, [registry.new_event(ev.TaskRunAbandoned("the owner runs it itself"))],
                 0)  # and the owner died before its TaskOfferWithdrawn

    engine = Engine(store, EngineConfig(lease_ttl=10, sweep_interval=0.05)).start()
    try:
        state = wait_for(store, workflow, timeout=60)
    finally:
        engine.stop()

    assert state.status is WorkflowStatus.SUCCEEDED
    assert lines(effects) == ["t000", "t001"]
    after = [type(e).__name__ for e in events_of(store, stream)
             if getattr(e, "task_id", None) == "t000"]
    assert after == ["TaskOfferWithdrawn", "TaskStarted", "TaskSucceeded"]


def test_offers_wait_offer_delay_after_the_workflow_was_taken(
        store: Store, tmp_path: Path) -> None:
    a_peer_that_never_claims(store)
    effects = tmp_path / "effects"
    workflow = fan_out(store, effects)
    state, owner = run_on_one_slot(store, workflow, offer_delay=600.0)

    assert state.status is WorkflowStatus.SUCCEEDED
    history = events_of(store, f"workflow-{workflow}")
    assert not [e for e in history if isinstance(e, ev.TasksOffered | ev.TaskOfferWithdrawn)]
    assert {e.engine for e in history if isinstance(e, ev.TaskStarted)} == {owner}
