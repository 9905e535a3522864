"""The README's first command, ``sahara-es all-in-one --demo``, as a newcomer runs it: it
provisions a real 3-node Spark cluster on local nodes (sshd, a user per cluster, the Spark
daemons), then deletes it; the store it leaves passes ``store check`` and every projection
passes ``projections verify``."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from sahara_es.cli.main import main


def test_all_in_one_applies_the_schema_and_runs_the_demo(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    result = CliRunner().invoke(main, ["--store", url, "all-in-one", "--demo",
                                       "--data-dir", str(tmp_path)])

    assert result.exit_code == 0, result.output
    assert "ResourceCreated" in result.output and "ClusterStatusChanged" in result.output
    assert "cluster spark-demo-" in result.output and ": Active" in result.output
    assert "the Spark master's status" in result.output and "ALIVE" in result.output
    assert "the cluster is gone" in result.output
    assert "late write was refused" in result.output
    assert "succeeded" in result.output and "TaskRetried" in result.output
    assert "rolled_back" in result.output and "WorkflowRolledBack" in result.output

    checked = CliRunner().invoke(main, ["--store", url, "store", "check"])
    assert checked.exit_code == 0, checked.output
    verified = CliRunner().invoke(main, ["--store", url, "projections", "verify"])
    assert verified.exit_code == 0, verified.output
    assert "workflows: 0 differences" in verified.output
    assert "clusters: 0 differences" in verified.output
