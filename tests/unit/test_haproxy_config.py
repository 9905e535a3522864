"""``sahara-es haproxy-config``: the configuration for several API processes, as HAProxy
itself checks it, and the arguments it refuses."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from sahara_es.api.haproxy import parse_backend
from sahara_es.cli.main import main

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"


def generated(*args: str) -> str:
    result = CliRunner().invoke(main, ["haproxy-config", *args])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.skipif(not Path(HAPROXY).exists(), reason="HAProxy is not installed")
def test_the_configuration_is_valid_for_haproxy(tmp_path: Path) -> None:
    config = tmp_path / "haproxy.cfg"
    config.write_text(generated("--bind", "127.0.0.1:8386", "--processes", "3"))
    subprocess.run([HAPROXY, "-c", "-q", "-f", str(config)], check=True)


def test_each_process_is_a_checked_server_and_callers_are_hashed_onto_them() -> None:
    text = generated("--backend", "10.0.0.1:8387", "--backend", "[fd00::2]:8387")
    assert "server api-1 10.0.0.1:8387 check" in text
    assert "server api-2 [fd00::2]:8387 check" in text
    assert "balance hash var(txn.caller)" in text
    assert "hash-type consistent" in text
    assert "option httpchk GET /healthz?probe=1" in text
    assert "option redispatch 1" in text
    assert "disable-l7-retry unless METH_GET || METH_HEAD" in text


def test_processes_count_up_from_the_first_port() -> None:
    text = generated("--processes", "2", "--host", "10.0.0.5", "--first-port", "9000")
    assert "server api-1 10.0.0.5:9000 check" in text
    assert "server api-2 10.0.0.5:9001 check" in text


@pytest.mark.parametrize("args", [(), ("--processes", "2", "--backend", "h:1"),
                                  ("--backend", "no-port"), ("--backend", "h:99999")])
def test_it_refuses_no_or_both_ways_of_naming_processes_and_bad_addresses(
        args: tuple[str, ...]) -> None:
    result = CliRunner().invoke(main, ["haproxy-config", *args])
    assert result.exit_code == 2, result.output


def test_a_backend_is_host_and_port() -> None:
    assert parse_backend("api.example:8387") == ("api.example", 8387)
    assert parse_backend("[fd00::1]:80") == ("fd00::1", 80)
    with pytest.raises(ValueError):
        parse_backend(":80")
