"""The README's commands, run as a newcomer would (the documentation cannot rot)."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from sahara_es.cli.main import main


def test_all_in_one_applies_the_schema_and_runs_the_demo(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    result = CliRunner().invoke(main, ["--store", url, "all-in-one", "--demo",
                                       "--data-dir", str(tmp_path)])

    assert result.exit_code == 0, result.output
    assert "ClusterCreateRequested" in result.output
    assert "cluster spark-demo-" in result.output and ": Active" in result.output
    assert "the Spark master's status" in result.output and "ALIVE" in result.output
    assert "the cluster is gone" in result.output
    assert "late write was refused" in result.output
    assert "succeeded" in result.output and "TaskRetried" in result.output
    assert "rolled_back" in result.output and "WorkflowRolledBack" in result.output


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

    assert "applied migrations [1, 3]" in first.output
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
