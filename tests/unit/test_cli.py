"""The commands of the README and the docs (doc/*.rst), run as a newcomer would (the
documentation cannot rot). The all-in-one demo, which provisions a real Spark cluster on local
nodes, is in tests/integration/test_cli_cluster.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from sahara_es.cli.main import main


def test_workflows_are_started_shown_and_cancelled_from_the_command_line(
    tmp_path: Path,
) -> None:
    store = ["--store", f"sqlite:///{tmp_path / 'store.db'}"]
    started = CliRunner().invoke(main, [*store, "workflow", "start", "test.noops",
                                        "--params", '{"tasks": 3, "shape": "linear"}',
                                        "--load", "tests.workflows"])
    assert started.exit_code == 0, started.output
    workflow_id = started.output.strip()

    shown = CliRunner().invoke(main, [*store, "workflow", "show", workflow_id])
    cancelled = CliRunner().invoke(main, [*store, "workflow", "cancel", workflow_id])

    assert '"status": "running"' in shown.output  # no engine runs here
    assert f"cancel requested for {workflow_id}" in cancelled.output


def test_db_upgrade_is_idempotent(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    first = CliRunner().invoke(main, ["--store", url, "db", "upgrade"])
    second = CliRunner().invoke(main, ["--store", url, "db", "upgrade"])

    assert "applied migrations [1, 3, 6, 7]" in first.output
    assert "up to date" in second.output


def test_tokens_are_made_and_revoked_from_the_command_line(tmp_path: Path) -> None:
    from sahara_es.commands import tokens
    from sahara_es.store import open_store

    url = f"sqlite:///{tmp_path / 'store.db'}"
    made = CliRunner().invoke(main, ["--store", url, "token", "create", "--project", "p1",
                                     "--role", "admin"])
    assert made.exit_code == 0, made.output
    token = made.output.splitlines()[0]
    store = open_store(url)
    caller = tokens.authenticate(store, token)
    assert caller is not None and caller.project_id == "p1" and caller.is_admin
    revoked = CliRunner().invoke(main, ["--store", url, "token", "revoke", token])
    assert revoked.exit_code == 0 and "revoked" in revoked.output
    assert tokens.authenticate(store, token) is None


class _Started(Exception):
    """Raised where a long-running command would start serving: its store is open by then."""


@pytest.mark.parametrize("command", [["api", "--auth", "noauth"], ["engine", "--nice", "0"],
                                     ["all-in-one"]])
def test_a_data_dir_holds_the_default_store(command: list[str], tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Without --store, a command given --data-dir keeps its store in it, not in
    $XDG_DATA_HOME (issue 12: every state lives under the configured state folder)."""
    from sahara_es.api import app as api_app
    from sahara_es.cli import api as cli_api
    from sahara_es.cli import engine as cli_engine
    from sahara_es.provisioning import services as runtime

    def started(*_: Any, **__: Any) -> Any:
        raise _Started

    monkeypatch.setattr(cli_api, "app_for", started)
    monkeypatch.setattr(cli_engine, "build_services", started)
    monkeypatch.setattr(runtime, "build_services", started)  # all-in-one imports it late
    monkeypatch.setattr(api_app, "create_app", started)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("SAHARA_ES_STORE", raising=False)
    monkeypatch.delenv("SAHARA_ES_DATA_DIR", raising=False)
    state = tmp_path / "state"

    result = CliRunner().invoke(main, [*command, "--data-dir", str(state)])

    assert isinstance(result.exception, _Started), result.output
    assert (state / "store.db").is_file()
    assert not (tmp_path / "xdg").exists()


@pytest.mark.parametrize("xdg", ["", "relative/share"])
def test_an_empty_or_relative_xdg_data_home_is_ignored(xdg: str, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from sahara_es.api.app import default_data_dir as api_default
    from sahara_es.cli.context import Context, default_data_dir

    monkeypatch.setenv("XDG_DATA_HOME", xdg)
    monkeypatch.setenv("HOME", str(tmp_path))
    expected = tmp_path / ".local" / "share" / "sahara-es"
    assert default_data_dir() == api_default() == expected
    assert Context(None).url == f"sqlite:///{expected / 'store.db'}"


def test_an_operator_sets_each_node_step_types_timeout_and_nothing_else_passes() -> None:
    from sahara_es.cli.engine import parse_step_timeouts

    assert parse_step_timeouts(("spark.start-worker=300", "fake.configure-node = 5")) == {
        "spark.start-worker": 300.0, "fake.configure-node": 5.0}
    for bad in ("spark.start-worker", "=300", "spark.start-worker=0", "x=soon", "x=nan"):
        with pytest.raises(click.BadParameter):
            parse_step_timeouts((bad,))
