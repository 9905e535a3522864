"""The real Cassandra node wants a password; the store gives it and shows it nowhere: not in
``db info``, not in errors or tracebacks, not in the logs."""

from __future__ import annotations

import logging
import os
import traceback
from pathlib import Path

import pytest
from click.testing import CliRunner

from sahara_es.cli.main import main
from sahara_es.store import StoreError, open_store
from sahara_es.store.config import CREDENTIALS_ENV
from tests.factories import CASSANDRA_CREDENTIALS, CASSANDRA_HOST, cassandra_up

URL = f"cassandra://{CASSANDRA_HOST}:9042/system"


@pytest.fixture(autouse=True)
def _node() -> None:
    if not cassandra_up() or not CASSANDRA_CREDENTIALS.exists():
        if os.environ.get("SAHARA_ES_REQUIRE_CASSANDRA"):
            pytest.fail("the Cassandra node is not running (tools/cassandra start)")
        pytest.skip("no Cassandra node with credentials (tools/cassandra start)")


def password() -> str:
    lines = dict(line.split("=", 1) for line in CASSANDRA_CREDENTIALS.read_text().splitlines())
    return lines["password"]


def test_the_service_s_role_logs_in_and_no_output_shows_its_password(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv(CREDENTIALS_ENV, str(CASSANDRA_CREDENTIALS))
    caplog.set_level(logging.DEBUG)
    store = open_store(URL)
    try:
        described = store.describe()
        assert described["user"] == "sahara_es"
        assert password() not in repr(described) and password() not in repr(store.config)
    finally:
        store.close()
    shown = CliRunner().invoke(main, ["--store", URL, "db", "info"])
    assert shown.exit_code == 0, shown.output
    assert "user: sahara_es" in shown.output and password() not in shown.output
    assert password() not in caplog.text


def test_a_wrong_password_is_refused_without_being_shown(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    wrong = "wrong-Pa55word-never-shown"
    file = tmp_path / "password"
    file.write_text(wrong)
    file.chmod(0o600)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(StoreError, match="refused the password of user 'sahara_es'") as refused:
        open_store(f"cassandra://sahara_es@{CASSANDRA_HOST}:9042/system?password_file={file}")
    assert not refused.value.retryable
    text = "".join(traceback.format_exception(refused.value))
    assert wrong not in text and password() not in text
    assert wrong not in caplog.text


def test_no_credentials_and_the_default_role_are_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CREDENTIALS_ENV, raising=False)
    with pytest.raises(StoreError, match="requires a user and password"):
        open_store(URL)
    file = tmp_path / "default-role"
    file.write_text("cassandra")
    file.chmod(0o600)
    with pytest.raises(StoreError, match="refused the password of user 'cassandra'"):
        open_store(f"cassandra://cassandra@{CASSANDRA_HOST}:9042/system?password_file={file}")
