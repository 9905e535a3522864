"""A run without the Cassandra node says so loudly: how many tests were skipped for want of
it and how to start it; with ``SAHARA_ES_REQUIRE_CASSANDRA`` (tox sets it) they fail."""

from __future__ import annotations

import configparser
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tests import conftest

ROOT = Path(__file__).resolve().parents[2]
NOWHERE = "127.0.0.254"
"""A loopback address where no Cassandra node listens."""


def run_pytest(*, require: bool) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != conftest.REQUIRE_ENV}
    env["SAHARA_ES_CASSANDRA_HOST"] = NOWHERE
    if require:
        env[conftest.REQUIRE_ENV] = "1"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
         "tests/contract/test_leases.py", "-k", "test_a_free_resource_is_acquired_at_epoch_one"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)


def test_a_run_without_the_node_reports_the_skipped_count_and_how_to_start_it() -> None:
    run = run_pytest(require=False)

    assert run.returncode == 0, run.stdout + run.stderr
    assert "1 Cassandra test SKIPPED: the node is not running" in run.stdout, run.stdout
    assert "tools/cassandra start" in run.stdout
    assert f"{conftest.REQUIRE_ENV}=1" in run.stdout


def test_a_run_requiring_the_node_fails_without_it() -> None:
    run = run_pytest(require=True)

    assert run.returncode == 1, run.stdout + run.stderr
    assert conftest.NOT_RUNNING in run.stdout
    assert "SKIPPED: the node is not running" not in run.stdout


def test_the_summary_counts_only_the_skips_for_want_of_the_node() -> None:
    lines: list[str] = []

    def write(text: str, **_: Any) -> None:
        lines.append(text)

    skipped = [SimpleNamespace(longrepr=("t.py", 1, f"Skipped: {conftest.NOT_RUNNING}")),
               SimpleNamespace(longrepr=("t.py", 2, "Skipped: no credentials"
                                                    " (tools/cassandra start)")),
               SimpleNamespace(longrepr=("t.py", 3, "Skipped: something else"))]
    reporter = SimpleNamespace(stats={"skipped": skipped}, write_sep=lambda _, text, **k:
                               write(text), write_line=write)

    conftest.pytest_terminal_summary(reporter, 0, None)  # type: ignore[arg-type]

    assert lines[0] == "2 Cassandra tests SKIPPED: the node is not running"
    lines.clear()
    conftest.pytest_terminal_summary(SimpleNamespace(stats={}), 0, None)  # type: ignore[arg-type]
    assert lines == []


@pytest.mark.parametrize("section", ["testenv"])
def test_tox_requires_the_node(section: str) -> None:
    tox = configparser.ConfigParser(interpolation=None)
    tox.read(ROOT / "tox.ini")
    setenv = dict(line.split("=", 1) for line in tox[section]["setenv"].split("\n") if line)
    assert {k.strip(): v.strip() for k, v in setenv.items()} == {conftest.REQUIRE_ENV: "1"}
