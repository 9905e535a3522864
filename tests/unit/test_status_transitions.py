"""The transition tables of cluster, job and workflow statuses: every legal transition is
walked, every other pair is refused with an error naming from and to, and the tables in the
docs are the code's."""

from __future__ import annotations

import itertools
import re
import uuid
from pathlib import Path

import pytest

from sahara_es.commands.clusters import INITIAL_STATUS
from sahara_es.commands.edp import INITIAL_JOB_STATUS
from sahara_es.engine.state import (
    WORKFLOW_TRANSITIONS,
    WorkflowState,
    WorkflowStatus,
    check_workflow_transition,
)
from sahara_es.events import Metadata, RecordedEvent, registry
from sahara_es.events import workflow as ev
from sahara_es.events.resources import CLUSTER_FINAL, JOB_FINAL
from sahara_es.events.statuses import (
    CLUSTER_TRANSITIONS,
    JOB_TRANSITIONS,
    ClusterStatus,
    IllegalTransition,
    JobStatus,
    TransitionTable,
    check_cluster_transition,
    check_job_transition,
)

DOCS = Path(__file__).resolve().parents[2] / "doc"

TABLES: dict[str, TransitionTable[ClusterStatus] | TransitionTable[JobStatus]
             | TransitionTable[WorkflowStatus]] = {
    "cluster": CLUSTER_TRANSITIONS, "job": JOB_TRANSITIONS, "workflow": WORKFLOW_TRANSITIONS}


def pairs(table: TransitionTable[str]) -> set[tuple[str | None, str]]:
    return {(t.source, t.target) for t in table.transitions}


@pytest.mark.parametrize("name", TABLES)
def test_every_legal_transition_is_allowed(name: str) -> None:
    table = TABLES[name]
    assert table.transitions
    for transition in table.transitions:
        assert table.allows(transition.source, transition.target)
        table.check(transition.source, transition.target, subject=name)  # does not raise
        assert transition.when


@pytest.mark.parametrize("name", TABLES)
def test_every_pair_the_table_does_not_list_is_refused(name: str) -> None:
    table = TABLES[name]
    legal = pairs(table)
    for source, target in itertools.product([None, *table.statuses], table.statuses):
        if source == target:
            assert table.allows(source, target)  # keeping a status is no transition
            continue
        assert table.allows(source, target) == ((source, target) in legal)
        if (source, target) not in legal:
            with pytest.raises(IllegalTransition) as refused:
                table.check(source, target, subject="s-1")
            assert (refused.value.from_status, refused.value.to_status) == (source, target)
            assert f"from {source or '(none: created)'} to {target}" in str(refused.value)
            assert not refused.value.retryable


@pytest.mark.parametrize(("source", "target"), [
    ("Deleting", "Active"), ("Error", "Active"), ("Validating", "Spawning"),
    ("Active", "Configuring"), ("Scaling", "Error"), (None, "Active"), ("Active", "Waiting"),
])
def test_illegal_cluster_transitions_are_refused(source: str | None, target: str) -> None:
    with pytest.raises(IllegalTransition, match="illegal cluster status transition"):
        check_cluster_transition(source, target, subject="cluster-1")


@pytest.mark.parametrize(("source", "target"), [
    ("SUCCEEDED", "RUNNING"), ("KILLED", "TOBEKILLED"), ("PENDING", "SUCCEEDED"),
    (None, "RUNNING"), ("KILLED", "PENDING"),
])
def test_illegal_job_transitions_are_refused(source: str | None, target: str) -> None:
    with pytest.raises(IllegalTransition, match="illegal job status transition"):
        check_job_transition(source, target, subject="job-1")


@pytest.mark.parametrize(("source", "target"), [
    ("succeeded", "reverting"), ("rolled_back", "running"), ("running", "rolled_back"),
    ("cancelled", "succeeded"), ("rollback_failed", "reverting"),
])
def test_illegal_workflow_transitions_are_refused(source: str, target: str) -> None:
    with pytest.raises(IllegalTransition, match="illegal workflow status transition"):
        check_workflow_transition(source, target, subject="workflow-1")


def test_the_message_names_the_subject_from_to_and_what_was_allowed() -> None:
    with pytest.raises(IllegalTransition) as refused:
        check_cluster_transition("Error", "Active", subject="cluster-0b3f")
    assert str(refused.value) == ("cluster-0b3f: illegal cluster status transition from Error"
                                  " to Active; allowed from Error: Deleting")


def test_the_lifecycles_the_workflows_walk_are_legal() -> None:
    walks = [
        # create, scale up and down, rebuild, delete
        [None, "Validating", "InfraUpdating", "Spawning", "Configuring", "Starting", "Active",
         "Scaling", "Spawning", "Decommissioning", "Active", "Scaling", "Decommissioning",
         "Active", "Scaling", "Spawning", "Active", "Deleting"],
        # a create rolled back, then deleted
        [None, "Validating", "InfraUpdating", "Spawning", "Error", "Deleting"],
        # a scale undone; a create deleted while it ran
        ["Active", "Scaling", "Active", "Deleting"],
        [None, "Validating", "InfraUpdating", "Deleting"],
    ]
    for walk in walks:
        for source, target in itertools.pairwise(walk):
            assert target is not None
            check_cluster_transition(source, target)
    for walk in ([None, "PENDING", "TOBEKILLED", "KILLED"],
                 [None, "PENDING", "RUNNING", "TOBEKILLED", "SUCCEEDED"]):
        for source, target in itertools.pairwise(walk):
            assert target is not None
            check_job_transition(source, target)


def test_initial_and_final_statuses_are_the_code_s() -> None:
    assert CLUSTER_TRANSITIONS.initial == {INITIAL_STATUS}
    assert CLUSTER_TRANSITIONS.final == {CLUSTER_FINAL}
    assert JOB_TRANSITIONS.initial == {INITIAL_JOB_STATUS}
    assert JOB_TRANSITIONS.final == JOB_FINAL
    assert WORKFLOW_TRANSITIONS.initial == {WorkflowStatus.RUNNING}
    assert WORKFLOW_TRANSITIONS.final == {s for s in WorkflowStatus if s.finished}


# -- the workflow's fold ----------------------------------------------------------------------

def started(stream: str) -> WorkflowState:
    state = WorkflowState(stream)
    state.apply_event(ev.WorkflowStarted("t", {}, [{"id": "a", "type": "x", "args": {},
                                                    "requires": []}]))
    return state


def test_the_runner_s_fold_refuses_an_illegal_workflow_transition_and_keeps_its_state() -> None:
    state = started("workflow-w1")
    state.apply_event(ev.WorkflowFailed("a", "boom"))
    state.apply_event(ev.WorkflowRolledBack([]))
    assert state.status is WorkflowStatus.ROLLED_BACK

    with pytest.raises(IllegalTransition) as refused:
        state.apply_event(ev.WorkflowSucceeded({}))

    assert str(refused.value).startswith("workflow-w1: illegal workflow status transition"
                                         " from rolled_back to succeeded")
    assert state.status is WorkflowStatus.ROLLED_BACK


def test_events_that_keep_the_status_pass() -> None:
    state = started("workflow-w2")
    state.apply_event(ev.WorkflowFailed("a", "boom"))
    state.apply_event(ev.CancelRequested("late"))  # already reverting: stays so
    state.apply_event(ev.WorkflowFailed("a", "again"))
    assert state.status is WorkflowStatus.REVERTING
    state.apply_event(ev.WorkflowCancelled(rolled_back=True))
    assert state.status is WorkflowStatus.CANCELLED


def test_a_recorded_history_is_folded_as_it_is() -> None:
    stream = "workflow-w3"
    events = [ev.WorkflowStarted("t", {}, []), ev.WorkflowSucceeded({}),
              ev.WorkflowFailed("a", "recorded later")]
    state = WorkflowState(stream)
    for version, event in enumerate(events, 1):
        record = registry.new_event(event, Metadata())
        state.fold(RecordedEvent(stream_id=stream, version=version, event_id=uuid.uuid4(),
                                 type=record.type, schema_version=record.schema_version,
                                 data=record.data, metadata=record.metadata))
    assert state.status is WorkflowStatus.REVERTING  # a fact, not refused on reading


# -- the docs' tables -------------------------------------------------------------------------

def doc_table(document: str, heading: str) -> set[tuple[str | None, str]]:
    """The ``from``/``to`` pairs of the simple table whose header row starts ``heading``."""
    lines = (DOCS / document).read_text().splitlines()
    start = next(i for i, line in enumerate(lines)
                 if line.split() == ["from", "to", "when"]
                 and lines[i - 1].startswith("=") and heading in "\n".join(lines[i - 6:i]))
    _, second, third = (column.start() for column in re.finditer("=+", lines[start - 1]))
    rows: list[tuple[str, str]] = []
    for line in lines[start + 2:]:
        if line.startswith("="):
            break
        if line[:second].strip():
            rows.append((line[:second].strip(), line[second:third].strip()))
    found: set[tuple[str | None, str]] = set()
    for source, target in rows:
        if source == "any other":
            found |= {(s, target) for s in statuses_of(document, heading) if s != target}
        else:
            found.add((None if source == "(created)" else source, target))
    return found


def statuses_of(document: str, heading: str) -> list[str]:
    return list(CLUSTER_TRANSITIONS.statuses) if heading.startswith("Cluster") else []


@pytest.mark.parametrize(("document", "heading", "name"), [
    ("provisioning.rst", "Cluster statuses", "cluster"),
    ("provisioning.rst", "Job statuses", "job"),
    ("engine.rst", "WORKFLOW_TRANSITIONS", "workflow"),
])
def test_the_docs_tables_are_the_code_s(document: str, heading: str, name: str) -> None:
    assert doc_table(document, heading) == pairs(TABLES[name])
