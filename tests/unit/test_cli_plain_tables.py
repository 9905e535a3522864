"""Tables printed where there is no terminal (a file, a pipe, a pager) are tab-separated lines
with every value whole: a long stream id is never folded into a narrow column."""

from __future__ import annotations

import io
import json
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from rich.console import Console
from rich.table import Table

from sahara_es.cli import history
from sahara_es.cli.main import main
from sahara_es.events import Metadata, NewEvent
from sahara_es.store import open_store

HEADER = "stream\tv\ttime\ttype\tactor\tengine"


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'store.db'}"


@pytest.fixture
def stream(url: str) -> str:
    """A stream with an id far wider than an 80-column table's share of it."""
    stream_id = f"democluster-{uuid.uuid4().hex}{uuid.uuid4().hex}"
    store = open_store(url, upgrade=True)
    try:
        meta = Metadata(actor="alice", project_id="p1", correlation_id="req-1",
                        source_address="10.0.0.5")
        store.append(stream_id, [NewEvent(type="ClusterStatusChanged",
                                          data={"status": status, "note": "a\tb"},
                                          metadata=meta)
                                 for status in ("Spawning", "Active")], 0)
    finally:
        store.close()
    return stream_id


def cli(url: str, *args: str) -> Result:
    result = CliRunner().invoke(main, ["--store", url, *args])
    assert result.exit_code == 0, result.output
    return result


def test_events_list_piped_gives_one_full_line_per_event(url: str, stream: str) -> None:
    lines = cli(url, "events", "list").output.splitlines()

    assert lines[0] == "# every stream"
    assert lines[1] == HEADER
    rows = [line.split("\t") for line in lines[2:]]
    assert [(r[0], r[1], r[3], r[4]) for r in rows] == [
        (stream, "1", "ClusterStatusChanged", "alice"),
        (stream, "2", "ClusterStatusChanged", "alice")]
    assert all(len(r) == 6 for r in rows)
    assert not any(c in "".join(lines) for c in "│┃━─")


def test_events_show_piped_keeps_the_data_whole(url: str, stream: str) -> None:
    lines = cli(url, "events", "show", stream).output.splitlines()

    assert lines[:2] == [f"# {stream}", "v\ttime\ttype\tactor\tengine\tdata"]
    assert json.loads(lines[2].split("\t")[5]) == {"status": "Spawning", "note": "a\tb"}


def test_audit_piped_gives_full_stream_ids(url: str, stream: str) -> None:
    lines = cli(url, "audit").output.splitlines()

    assert lines[1] == "time\tactor\tproject\trequest\tfrom\ttype\tstream"
    assert lines[2].split("\t")[1:] == ["alice", "p1", "req-1", "10.0.0.5",
                                        "ClusterStatusChanged", f"{stream} v1"]


def test_replay_piped_gives_plain_tables(url: str) -> None:
    started = cli(url, "workflow", "start", "test.noops", "--params",
                  '{"tasks": 2, "shape": "linear"}', "--load", "tests.workflows")
    workflow_id = started.output.strip()

    lines = cli(url, "replay", "workflow", workflow_id, "--steps").output.splitlines()

    assert "# steps" in lines and "# timeline" in lines
    steps = lines.index("# steps")
    assert lines[steps + 1] == "v\ttime\tevent\ttask\tengine\tstatus after"
    assert lines[steps + 2].split("\t")[2] == "WorkflowStarted"


def test_a_terminal_still_gets_the_rich_table(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    monkeypatch.setattr(history, "console", Console(file=out, force_terminal=True, width=100))
    table = Table(title="t")
    table.add_column("stream")
    table.add_row("[green]ok[/green]")

    history.print_table(table)

    assert "┃" in out.getvalue() or "│" in out.getvalue()


def test_markup_is_applied_and_line_breaks_escaped(capsys: pytest.CaptureFixture[str]) -> None:
    table = Table()
    table.add_column("step")
    table.add_column("error")
    table.add_row("[green]✓[/green] start", "line 1\nline 2")

    history.print_table(table)

    assert capsys.readouterr().out.splitlines() == ["step\terror", "✓ start\tline 1\\nline 2"]
