"""Cassandra credentials: a user in the URL or the file, the password only in a 0600 file,
and never in the configuration, its repr, or an error."""

from __future__ import annotations

from pathlib import Path

import pytest

from sahara_es.store import parse_store_url
from sahara_es.store.config import CREDENTIALS_ENV, read_credentials

SECRET = "s3cret-Never-Shown"


def password_file(folder: Path, text: str, mode: int = 0o600) -> Path:
    path = folder / "password"
    path.write_text(text)
    path.chmod(mode)
    return path


def test_the_user_comes_from_the_url_and_the_password_from_a_file(tmp_path: Path) -> None:
    path = password_file(tmp_path, SECRET + "\n")
    config = parse_store_url(f"cassandra://svc@10.0.0.1:9042/ks?password_file={path}")[1]["config"]
    assert (config.username, config.password_file) == ("svc", str(path))
    assert read_credentials(config) == ("svc", SECRET)
    assert SECRET not in repr(config) and SECRET not in str(config)


def test_the_credentials_file_of_tools_cassandra_names_both(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = password_file(tmp_path, f"username=sahara_es\npassword={SECRET}\n")
    monkeypatch.setenv(CREDENTIALS_ENV, str(path))
    config = parse_store_url("cassandra://127.0.0.1/ks")[1]["config"]
    assert read_credentials(config) == ("sahara_es", SECRET)
    assert SECRET not in repr(config)


def test_no_credentials_without_a_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CREDENTIALS_ENV, raising=False)
    config = parse_store_url("cassandra://127.0.0.1/ks")[1]["config"]
    assert read_credentials(config) is None


@pytest.mark.parametrize("url", [
    f"cassandra://svc:{SECRET}@127.0.0.1/ks",
    f"cassandra://svc@127.0.0.1/ks?password={SECRET}",
])
def test_a_password_in_the_url_is_refused_without_being_repeated(url: str) -> None:
    with pytest.raises(ValueError) as refused:
        parse_store_url(url)
    assert SECRET not in str(refused.value)


def test_a_password_file_open_to_others_is_refused(tmp_path: Path) -> None:
    path = password_file(tmp_path, SECRET, mode=0o644)
    config = parse_store_url(f"cassandra://svc@127.0.0.1/ks?password_file={path}")[1]["config"]
    with pytest.raises(ValueError, match="chmod 600") as refused:
        read_credentials(config)
    assert SECRET not in str(refused.value)


def test_a_user_without_a_password_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CREDENTIALS_ENV, raising=False)
    with pytest.raises(ValueError, match="password_file"):
        parse_store_url("cassandra://svc@127.0.0.1/ks")
