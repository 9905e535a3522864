"""Recorded histories replayed against the current code, as Temporal's replay tests do.

Each file in ``tests/fixtures/histories/`` holds real events of cluster workflows (create,
scale, delete, a rollback, a takeover after kill -9) recorded by ``python -m
tests.record_histories``. Every one is loaded into a fresh SQLite store and rebuilt with the
code as it is now: every event must decode (upcasters included), the current code must plan
the recorded graph and re-plan the recorded subtasks it can plan offline, fold each event to
the recorded status and take, at each step, the decision the history shows. A change that
fails here would strand the workflows running when it is deployed: add a new task or event
version instead (doc/engine.rst, "Recorded histories").
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sahara_es import provisioning
from sahara_es.cli.replay import replay_workflow
from sahara_es.commands import resources
from sahara_es.engine import Flow, Spawn, TaskContext, WorkflowState
from sahara_es.engine import flow as flow_module
from sahara_es.events import category_of, registry
from sahara_es.events import workflow as ev
from sahara_es.events.resources import Kind
from sahara_es.store import Store, open_store
from tests.histories import (
    History,
    ReplayMismatch,
    decode_all,
    history_files,
    load_into,
    load_task_types,
    read_history,
    replay,
)
from tests.record_histories import SCENARIOS

load_task_types()

HISTORIES = {path.name: read_history(path) for path in history_files()}
WORKFLOWS = [(name, workflow_id) for name, history in HISTORIES.items()
             for workflow_id in history.workflows]


@pytest.fixture
def fresh_store(tmp_path: Path) -> Iterator[Store]:
    store = open_store(f"sqlite:///{tmp_path}/replay.db", upgrade=True)
    yield store
    store.close()


def loaded(store: Store, name: str) -> History:
    history = HISTORIES[name]
    load_into(store, history)
    return history


def test_every_scenario_is_recorded() -> None:
    missing = set(SCENARIOS) - {h.scenario for h in HISTORIES.values()}
    assert not missing, f"no history of {missing}: python -m tests.record_histories"
    for history in HISTORIES.values():
        assert history.workflows, history.name
        assert all(e["stream_id"] for e in history.events)


@pytest.mark.parametrize("name", sorted(HISTORIES))
def test_every_recorded_event_decodes_with_the_current_registry(fresh_store: Store,
                                                                 name: str) -> None:
    decode_all(loaded(fresh_store, name), fresh_store)


@pytest.mark.parametrize(("name", "workflow_id"), WORKFLOWS,
                         ids=[f"{n}:{w.split('-', 1)[0]}" for n, w in WORKFLOWS])
def test_a_recorded_workflow_replays_as_it_happened(fresh_store: Store, name: str,
                                                    workflow_id: str) -> None:
    history = loaded(fresh_store, name)
    replayed = replay(fresh_store, history, workflow_id)
    # The audit CLI's replay (``sahara-es replay workflow``) tells the same story.
    story = replay_workflow(fresh_store, workflow_id)
    assert story.state.summary()["status"] == history.workflows[workflow_id]["status"]
    assert [s["status"] for s in story.steps] == history.workflows[workflow_id]["statuses"]
    # The provisioning workflows plan their nodes' steps from the first task's result: the
    # create's and the scale's plan are re-planned offline from what the history recorded.
    if history.workflows[workflow_id]["type"] in (provisioning.CREATE, provisioning.SCALE):
        assert "plan" in replayed.replanned, replayed


@pytest.mark.parametrize("name", sorted(HISTORIES))
def test_the_streams_the_workflows_read_fold_with_the_current_aggregates(
        fresh_store: Store, name: str) -> None:
    history = loaded(fresh_store, name)
    clusters = {e["stream_id"] for e in history.events
                if category_of(e["stream_id"]) == Kind.CLUSTER.value}
    assert clusters, f"{name} holds no cluster stream"
    for stream in clusters:
        cluster = resources.load(fresh_store, Kind.CLUSTER, stream.split("-", 1)[1])
        assert cluster.version == fresh_store.stream_version(stream)


def test_the_recordings_show_what_their_scenario_names() -> None:
    """A re-recording that no longer shows its scenario (a takeover without a second owner,
    a rollback that did not roll back) is caught here, not taken for coverage."""
    ends = {"create": ["succeeded"], "scale": ["succeeded", "succeeded"],
            "delete": ["succeeded"], "rollback": ["rolled_back"], "takeover": ["succeeded"]}
    for history in HISTORIES.values():
        found = sorted(w["status"] for w in history.workflows.values())
        assert found == ends[history.scenario], history.name
        if history.scenario == "rollback":
            workflow = next(iter(history.workflows.values()))
            assert "reverted" in workflow["tasks"].values(), history.name
        if history.scenario == "takeover":
            owners = [e["data"]["engine"] for e in history.events
                      if e["type"] == ev.WorkflowOwned.event_type]
            assert len(set(owners)) >= 2, (history.name, owners)
            assert owners[0].startswith("doomed-") and owners[-1].startswith("heir-")


# -- the replay catches what would break a running workflow ----------------------------------

def _rollback(store: Store) -> tuple[History, str]:
    history = loaded(store, "rollback.json")
    return history, next(iter(history.workflows))


def test_a_workflow_planned_differently_fails_naming_the_first_differing_step(
        fresh_store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    history, workflow_id = _rollback(fresh_store)
    planned = flow_module._workflow_types[provisioning.CREATE]

    def create_with_a_check_first(params: dict[str, Any]) -> Flow:
        flow = planned(params)
        spec = flow.specs[1]
        flow.specs[1] = dataclasses.replace(spec, args={**spec.args, "check": True})
        return flow

    monkeypatch.setitem(flow_module._workflow_types, provisioning.CREATE,
                        create_with_a_check_first)
    with pytest.raises(ReplayMismatch) as caught:
        replay(fresh_store, history, workflow_id)
    message = str(caught.value)
    assert message.startswith(f"{history.name}: workflow-{workflow_id} v1 WorkflowStarted:")
    assert "step 2, task plan: its args is {" in message


def test_subtasks_spawned_differently_fail_naming_the_first_differing_one(
        fresh_store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    history, workflow_id = _rollback(fresh_store)
    execute = provisioning.create.SpawnCreate.execute

    def without_place(self: provisioning.create.SpawnCreate, ctx: TaskContext) -> Spawn:
        spawned = execute(self, ctx)
        flow = Flow(specs=[s for s in spawned.flow.specs if s.id != "place"])
        return Spawn(spawned.result, flow)

    monkeypatch.setattr(provisioning.create.SpawnCreate, "execute", without_place)
    with pytest.raises(ReplayMismatch) as caught:
        replay(fresh_store, history, workflow_id)
    message = str(caught.value)
    assert f"{history.name}: workflow-{workflow_id} v7 TasksSpawned:" in message
    assert "other subtasks of plan: step 1, task plan.place" in message


def test_a_renamed_task_type_fails_naming_the_task(fresh_store: Store,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    history, workflow_id = _rollback(fresh_store)
    monkeypatch.delitem(flow_module._task_types, "cluster.place")
    with pytest.raises(ReplayMismatch, match=r"task plan\.place of type 'cluster\.place'"
                                             r" cannot be built"):
        replay(fresh_store, history, workflow_id)


def test_a_changed_revert_order_fails_naming_the_step(fresh_store: Store,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    history, workflow_id = _rollback(fresh_store)
    to_revert = WorkflowState.to_revert
    monkeypatch.setattr(WorkflowState, "to_revert", lambda self: to_revert(self)[::-1])
    with pytest.raises(ReplayMismatch, match=r"v25 TaskReverting: task \S+workers-1 is"
                                             r" reverted, the current code reverts begin"):
        replay(fresh_store, history, workflow_id)


def test_a_changed_fold_fails_naming_the_step_and_the_statuses(
        fresh_store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    history, workflow_id = _rollback(fresh_store)
    status_after = WorkflowState.status_after

    def failure_ignored(self: WorkflowState, event: Any) -> Any:
        return self.status if isinstance(event, ev.WorkflowFailed) else status_after(self, event)

    monkeypatch.setattr(WorkflowState, "status_after", failure_ignored)
    with pytest.raises(ReplayMismatch, match=r"WorkflowFailed \(task \S+manager-1\): the"
                                             r" workflow is running after it, the recorded"
                                             r" history says reverting"):
        replay(fresh_store, history, workflow_id)


def test_an_event_changed_without_an_upcaster_fails_naming_it(
        fresh_store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    history, _ = _rollback(fresh_store)
    monkeypatch.setattr(ev.TaskSucceeded, "schema_version", 2)
    with pytest.raises(ReplayMismatch, match=r"TaskSucceeded schema v1\) no longer decodes:"
                                             r" UnknownEventType: no upcaster"):
        decode_all(history, fresh_store)
    # With the upcaster the rule asks for, the recorded events decode again.
    monkeypatch.setitem(registry._upcasters, (ev.TaskSucceeded.event_type, 1),
                        lambda data: data)
    decode_all(history, fresh_store)


def test_a_recorded_event_the_fold_refuses_fails_naming_it(
        fresh_store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    history, workflow_id = _rollback(fresh_store)
    apply = WorkflowState._apply

    def refusing(self: WorkflowState, event: Any) -> None:
        if isinstance(event, ev.WorkflowRolledBack):
            raise ValueError("a rollback with nothing reverted")
        apply(self, event)

    monkeypatch.setattr(WorkflowState, "_apply", refusing)
    with pytest.raises(ReplayMismatch, match=r"rollback\.json: workflow-\S+ v\d+"
                                             r" WorkflowRolledBack: the current fold refuses"
                                             r" it: ValueError: a rollback with nothing"):
        replay(fresh_store, history, workflow_id)
