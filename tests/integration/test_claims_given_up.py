"""A claim that ends with no outcome never stalls its workflow (both stores, engines in this
process).

A task offered by a workflow's owner is claimed by an engine (any engine, the owner's too)
and runs under that engine's own lease, not the ownership it was claimed in. When the claimed
run stops with no outcome (its engine lost its own lease, or stopped), the claimer says so in
the claim stream (``TaskRunAbandoned``); the workflow's owner, whoever it is by then, finishes
the task itself from the intent the claim recorded, although the claimer still heartbeats.
"""

from __future__ import annotations

from pathlib import Path

from sahara_es.engine import Engine, EngineConfig, WorkflowStatus, start_workflow, wait_for
from sahara_es.engine.attempts import Outcome
from sahara_es.engine.engine import engine_lease_resource, events_of
from sahara_es.engine.runner import ClaimRecorder, claim_stream, give_up_claim
from sahara_es.events import Metadata, registry
from sahara_es.events import workflow as ev
from sahara_es.store import Store
from tests.workflows import lines


def offered_and_claimed(store: Store, effects: Path, claimer: str) -> tuple[str, str]:
    """A two-task chain whose dead owner offered its first task, which ``claimer`` claimed:
    the owner's lease has run out, the claimer's engine lease holds."""
    workflow = start_workflow(store, "test.chain", {"tasks": 2, "effects": str(effects)})
    stream = f"workflow-{workflow}"
    dead = store.acquire_lease(stream, "dead-owner", ttl=0.3)
    store.fence(stream, dead)
    claim = claim_stream(workflow, "t000", 1)
    start = ev.TaskStarted("t000", 1, claimer, 0, run=claim)
    store.append(stream, [registry.new_event(e) for e in (
        ev.WorkflowOwned("dead-owner", dead.epoch),
        ev.TasksOffered({"t000": 1}),
        start,
    )], 1, lease=dead)
    store.append(claim, [registry.new_event(e) for e in (ev.TaskClaimed(claimer), start)], 0)
    store.acquire_lease(engine_lease_resource(claimer, None), claimer, ttl=120)
    return workflow, claim


def test_a_claim_given_up_by_a_live_claimer_is_finished_by_the_owner(
        store: Store, tmp_path: Path) -> None:
    effects = tmp_path / "effects"
    workflow, claim = offered_and_claimed(store, effects, "claimer")
    recorder = ClaimRecorder(store, claim, Metadata(engine_id="claimer"))
    recorder.version = 2
    give_up_claim(recorder, Outcome("t000", False, error="LeaseExpired", abandoned=True),
                  "claimer")

    engine = Engine(store, EngineConfig(lease_ttl=10, sweep_interval=0.05)).start()
    try:
        state = wait_for(store, workflow, timeout=60)
    finally:
        engine.stop()

    assert state.status is WorkflowStatus.SUCCEEDED
    assert lines(effects) == ["t000", "t001"]  # the claimer never ran it; the owner did, once
    assert [type(e).__name__ for e in events_of(store, claim)] == [
        "TaskClaimed", "TaskStarted", "TaskRunAbandoned"]
    started = [e for e in events_of(store, f"workflow-{workflow}")
               if isinstance(e, ev.TaskStarted) and e.task_id == "t000"]
    assert [s.engine for s in started] == ["claimer", engine.engine_id]


def test_a_claimer_gives_up_only_a_run_that_ended_without_an_outcome(
        store: Store, tmp_path: Path) -> None:
    _, claim = offered_and_claimed(store, tmp_path / "effects", "claimer")
    recorder = ClaimRecorder(store, claim, Metadata(engine_id="claimer"))
    recorder.version = 2

    give_up_claim(recorder, Outcome("t000", True, result=None), "claimer")
    assert store.stream_version(claim) == 2  # an outcome was recorded: nothing to give up

    owner = ClaimRecorder(store, claim, Metadata(engine_id="owner"))
    owner.version = 2
    owner.record([ev.TaskRunAbandoned("the owner took it back")], durable=True)
    give_up_claim(recorder, Outcome("t000", False, error="lost", abandoned=True), "claimer")
    assert [e.reason for e in events_of(store, claim)[2:]] == ["the owner took it back"]
