"""The audit CLI on a history written by real workflows, on both stores.

One history per backend, in a store of its own (the session's shared store holds other
tests' made-up event types, which ``store check`` rightly reports): a workflow that succeeds
and one that rolls back on an in-process engine, then one whose engine process is killed
(-9) half-way and that another engine process finishes.
"""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from sahara_es.cli.main import main
from sahara_es.engine import Engine, EngineConfig, WorkflowStatus, start_workflow, wait_for
from sahara_es.events import Metadata, NewEvent
from sahara_es.store import Store, open_store
from tests.conftest import BACKENDS, require_backend
from tests.engines import ROOT, EngineProcess, wait_until
from tests.factories import (
    CASSANDRA_HOST,
    CASSANDRA_TEST_KEYSPACE,
    CASSANDRA_TEST_URL,
    drop_cassandra_keyspace,
    sqlite_url,
)
from tests.workflows import lines

KEYSPACE = f"{CASSANDRA_TEST_KEYSPACE}_history"


@dataclass
class History:
    url: str
    store: Store
    succeeded: str
    rolled_back: str
    taken_over: str
    folder: Path


def cli(url: str, *args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(main, ["--store", url, *args], input=input,
                              catch_exceptions=False)


def json_lines(result: Result) -> list[dict[str, Any]]:
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def meta(actor: str, project: str, address: str) -> Metadata:
    return Metadata(actor=actor, project_id=project, correlation_id=f"req-{uuid.uuid4().hex[:8]}",
                    source_address=address)


@pytest.fixture(scope="module", params=BACKENDS)
def history(request: pytest.FixtureRequest,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[History]:
    require_backend(request.param)
    folder = tmp_path_factory.mktemp(f"history-{request.param}")
    if request.param == "cassandra":
        drop_cassandra_keyspace(KEYSPACE)
        url = (f"cassandra://{CASSANDRA_HOST}:9042/{KEYSPACE}"
               "?partition_size=100")
    else:
        url = sqlite_url(folder)
    store = open_store(url, upgrade=True)
    effects = str(folder / "effects")

    engine = Engine(store, EngineConfig(engine_id="in-process", concurrency=4, lease_ttl=2,
                                        sweep_interval=0.05)).start()
    try:
        succeeded = start_workflow(store, "test.chain", {"tasks": 3, "effects": effects},
                                   metadata=meta("alice", "p1", "10.0.0.5"))
        rolled_back = start_workflow(
            store, "test.chain", {"tasks": 4, "effects": effects, "fail_at": "t002"},
            metadata=meta("bob", "p2", "10.0.0.6"))
        assert wait_for(store, succeeded).status is WorkflowStatus.SUCCEEDED
        assert wait_for(store, rolled_back).status is WorkflowStatus.ROLLED_BACK
    finally:
        engine.stop()

    chain = str(folder / "chain")
    taken_over = start_workflow(store, "test.chain", {"tasks": 12, "effects": chain,
                                                      "sleep": 0.1},
                                metadata=meta("carol", "p1", "10.0.0.7"))
    with EngineProcess(url, "first", folder) as first:
        wait_until(lambda: len(lines(chain)) >= 4)
        first.kill()
    with EngineProcess(url, "second", folder) as second:
        assert wait_for(store, taken_over, timeout=60).status is WorkflowStatus.SUCCEEDED
        assert second.stop() == 0
    time.sleep(1)  # past Cassandra's feed settle window: the feed holds the whole history
    yield History(url, store, succeeded, rolled_back, taken_over, folder)
    store.close()


def test_a_clean_history_passes_the_store_check(history: History) -> None:
    result = cli(history.url, "store", "check", "--json")

    assert result.exit_code == 0, result.output
    totals = json_lines(result)[-1]["totals"]
    assert totals["problems"] == 0 and totals["streams"] >= 3 and totals["events"] > 40


def test_replay_shows_the_takeover_engine_by_engine(history: History) -> None:
    result = cli(history.url, "replay", "workflow", history.taken_over, "--json")

    assert result.exit_code == 0, result.output
    replay = json.loads(result.stdout)
    assert replay["workflow"]["status"] == "succeeded"
    owners = [o["engine"] for o in replay["owners"]]
    assert owners == ["first", "second"]
    assert replay["owners"][1]["epoch"] > replay["owners"][0]["epoch"]
    timeline = replay["timeline"]
    assert {row["task_id"] for row in timeline} == {f"t{i:03d}" for i in range(12)}
    assert {"first", "second"} <= {row["engine"] for row in timeline}
    finished = [row for row in timeline if row["outcome"] in ("succeeded", "reconciled")]
    assert len({row["task_id"] for row in finished}) == 12
    assert all(row["duration"] is not None and row["duration"] >= 0.1 for row in finished
               if row["outcome"] == "succeeded")
    for cut_off in (row for row in timeline if row["outcome"].startswith("cut off")):
        assert cut_off["engine"] == "first" and "second took over" in cut_off["outcome"]
        assert any(row["task_id"] == cut_off["task_id"] and row["engine"] == "second"
                   for row in finished)


def test_replay_shows_the_rollback_and_any_point_before_it(history: History) -> None:
    full = json.loads(cli(history.url, "replay", "workflow", history.rolled_back,
                          "--json").stdout)
    rows = {row["task_id"]: row for row in full["timeline"]}

    assert full["workflow"]["status"] == "rolled_back"
    assert full["workflow"]["failure"]["task_id"] == "t002"
    assert rows["t002"]["outcome"] == "failed" and not rows["t002"]["reverted"]
    assert rows["t000"]["reverted"] and rows["t001"]["reverted"]
    assert "t003" not in rows
    assert [s["status"] for s in full["steps"]][-1] == "rolled_back"

    t001_done = next(s["version"] for s in full["steps"]
                     if s["type"] == "TaskSucceeded" and s["task"] == "t001")
    then = json.loads(cli(history.url, "replay", "workflow", history.rolled_back,
                          "--until", str(t001_done), "--json").stdout)
    assert then["workflow"]["status"] == "running"
    assert then["workflow"]["version"] == t001_done
    assert [(r["task_id"], r["outcome"], r["reverted"]) for r in then["timeline"]] == [
        ("t000", "succeeded", False), ("t001", "succeeded", False)]

    table = cli(history.url, "replay", "workflow", history.rolled_back, "--steps")
    assert "rolled_back" in table.stdout and "TaskReverted" in table.stdout


def test_events_of_a_stream_by_kind_and_type(history: History) -> None:
    stream = json_lines(cli(history.url, "events", "list", history.rolled_back,
                            "--kind", "workflow", "--json"))
    reverted = json_lines(cli(history.url, "events", "show", history.rolled_back,
                              "--kind", "workflow", "--type", "TaskReverted", "--json"))
    by_engine = json_lines(cli(history.url, "events", "list", "--category", "workflow",
                               "--engine", "second", "--json"))

    assert [e["version"] for e in stream] == list(range(1, len(stream) + 1))
    assert stream[0]["type"] == "WorkflowStarted" and stream[-1]["type"] == "WorkflowRolledBack"
    assert [e["data"]["task_id"] for e in reverted] == ["t001", "t000"]
    assert by_engine and {e["stream_id"] for e in by_engine} == {
        f"workflow-{history.taken_over}"}


def test_tail_reads_the_feed_from_a_checkpoint(history: History, tmp_path: Path) -> None:
    checkpoint = tmp_path / "position"
    first = json_lines(cli(history.url, "events", "tail", "--from-start", "--limit", "5",
                           "--checkpoint", str(checkpoint), "--json"))
    last = json_lines(cli(history.url, "events", "tail", "-n", "3", "--json"))

    assert len(first) == 5 and checkpoint.read_text()
    assert len(last) == 3
    assert last[-1]["position"] > first[-1]["position"] or history.url.startswith("cassandra")


def test_tail_follows_the_feed_live(history: History) -> None:
    # Its own project: events of the history still on their way into the feed (and anything
    # else written meanwhile) may come first, and are not what this test follows.
    project = f"tail-{uuid.uuid4().hex[:8]}"
    follower = subprocess.Popen(
        [sys.executable, "-m", "sahara_es.cli", "--store", history.url, "events", "tail", "-f",
         "-n", "0", "--limit", "2", "--poll", "0.05", "--json", "--project", project],
        cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(3)  # it is following: the history is behind it
        stream = f"cancel-{uuid.uuid4().hex}"
        meta = Metadata(actor="alice", project_id=project)
        history.store.append(stream, [NewEvent(type="CancelRequested", data={"reason": "a"},
                                               metadata=meta)], 0)
        history.store.append(stream, [NewEvent(type="CancelRequested", data={"reason": "b"},
                                               metadata=meta)], 1)
        out, _ = follower.communicate(timeout=30)
    finally:
        follower.kill()

    assert follower.returncode == 0
    assert [(e["stream_id"], e["data"]["reason"]) for e in map(json.loads, out.splitlines())] \
        == [(stream, "a"), (stream, "b")]


def test_export_then_import_reproduces_the_history_and_twice_changes_nothing(
    history: History, tmp_path: Path
) -> None:
    exported = cli(history.url, "events", "export")
    copy = sqlite_url(tmp_path)

    first = cli(copy, "events", "import", input=exported.stdout)
    again = cli(copy, "events", "import", input=exported.stdout)
    reexported = cli(copy, "events", "export")

    records = exported.stdout.splitlines()
    assert len(records) > 40
    assert first.exit_code == 0 and f"imported {len(records)} events" in first.stderr
    assert again.exit_code == 0 and "imported 0 events" in again.stderr
    assert sorted(reexported.stdout.splitlines()) == sorted(records)
    assert cli(copy, "store", "check").exit_code == 0


def test_streams_move_from_one_backend_to_the_other_unchanged(
    history: History, tmp_path: Path
) -> None:
    require_backend("cassandra")
    other = CASSANDRA_TEST_URL if history.url.startswith("sqlite") else sqlite_url(tmp_path)
    for workflow in (history.succeeded, history.rolled_back, history.taken_over):
        exported = cli(history.url, "events", "export", workflow, "--kind", "workflow")
        imported = cli(other, "events", "import", input=exported.stdout)
        moved = cli(other, "events", "export", workflow, "--kind", "workflow")

        assert imported.exit_code == 0, imported.output
        assert moved.stdout == exported.stdout


def test_a_different_event_at_an_imported_version_is_a_conflict(
    history: History, tmp_path: Path
) -> None:
    stream = cli(history.url, "events", "export", history.succeeded, "--kind", "workflow")
    copy = sqlite_url(tmp_path)
    open_store(copy, upgrade=True).append(f"workflow-{history.succeeded}",
                                          [NewEvent(type="WorkflowStarted", data={})], 0)

    result = cli(copy, "events", "import", input=stream.stdout)

    assert result.exit_code == 1
    assert f"workflow-{history.succeeded} v1: stored event" in result.stdout


def test_audit_tells_who_did_what_per_project(history: History) -> None:
    p1 = json_lines(cli(history.url, "audit", "--project", "p1", "--format", "jsonl"))
    as_csv = list(csv.DictReader(io.StringIO(
        cli(history.url, "audit", "--format", "csv").stdout)))
    future = json_lines(cli(history.url, "audit", "--since", "2999-01-01", "--format", "jsonl"))

    assert {(r["actor"], r["source_address"], r["type"]) for r in p1} == {
        ("alice", "10.0.0.5", "WorkflowStarted"), ("carol", "10.0.0.7", "WorkflowStarted")}
    assert all(r["request_id"].startswith("req-") for r in p1)
    assert {r["actor"] for r in as_csv} == {"alice", "bob", "carol"}
    assert future == []


def test_store_check_finds_gaps_in_a_damaged_copy(history: History, tmp_path: Path) -> None:
    copy = sqlite_url(tmp_path)
    cli(copy, "events", "import", input=cli(history.url, "events", "export").stdout)
    with sqlite3.connect(tmp_path / "store.db") as db:
        db.execute("DELETE FROM events WHERE stream_id = ? AND version = 3",
                   (f"workflow-{history.rolled_back}",))

    result = cli(copy, "store", "check")

    assert result.exit_code == 1
    assert f"gap workflow-{history.rolled_back}: v4 follows v2" in result.stdout


def test_the_workflows_projection_rebuilt_from_zero_matches_the_engine_s_fold(
    history: History,
) -> None:
    rebuilt = cli(history.url, "projections", "rebuild", "workflows")
    rows = {row["key"]: row for row in json_lines(cli(history.url, "projections", "show",
                                                      "workflows"))}

    assert rebuilt.exit_code == 0 and "is live" in rebuilt.stdout
    for workflow in (history.succeeded, history.rolled_back, history.taken_over):
        summary = wait_for(history.store, workflow, timeout=1).summary()
        row = rows[workflow]
        assert {k: row[k] for k in ("status", "owner", "epoch", "tasks", "failure", "version")} \
            == {k: summary[k] for k in ("status", "owner", "epoch", "tasks", "failure",
                                        "version")}
    assert rows[history.taken_over]["owner"] == "second"
    assert rows[history.succeeded]["project"] == "p1"


def test_verify_reports_each_difference_with_the_live_rows(history: History) -> None:
    cli(history.url, "projections", "rebuild", "workflows")
    assert cli(history.url, "projections", "verify", "workflows").exit_code == 0

    generation = history.store.live_generation("workflows")
    assert generation is not None
    row = history.store.get_row("workflows", generation, history.succeeded)
    assert row is not None
    history.store.put_rows("workflows", generation, {history.succeeded: {**row,
                                                                         "status": "running"},
                                                     history.rolled_back: None})
    result = cli(history.url, "projections", "verify", "workflows", "--json")

    assert result.exit_code == 1
    found = {(d["key"], d["kind"]): d["fields"] for d in json_lines(result)}
    assert found == {
        (history.succeeded, "different"): {"status": {"live": "running",
                                                      "rebuilt": "succeeded"}},
        (history.rolled_back, "missing"): {},
    }
    cli(history.url, "projections", "rebuild", "workflows")
    assert cli(history.url, "projections", "verify", "workflows").exit_code == 0


# Last: it leaves an unknown event type and a stale lease in the history's store.
def test_store_check_fails_on_unknown_types_and_stale_leases(history: History) -> None:
    cluster = f"cluster-{uuid.uuid4().hex}"
    history.store.append(cluster, [NewEvent(type="ClusterMelted", data={})], 0)
    ghost = f"ghost-{uuid.uuid4().hex[:6]}"
    history.store.acquire_lease(f"engine-{ghost}", ghost, 0.01)  # then it stopped
    time.sleep(0.05)
    lease = history.store.acquire_lease(f"workflow-{uuid.uuid4().hex}", ghost, 60)
    try:
        result = cli(history.url, "store", "check", "--json")
    finally:
        history.store.release_lease(lease)

    assert result.exit_code == 1
    problems = {(p["kind"], p["subject"]) for p in json_lines(result) if "kind" in p}
    assert ("unknown-type", f"{cluster} v1") in problems
    assert ("stale-lease", lease.resource) in problems
