"""EDP storage rules without a store: URL and host checks, the policy from the environment,
and the shape of the S3A settings Spark gets for swift:// and s3:// data sources."""

from __future__ import annotations

from pathlib import Path

import pytest

from sahara_es.edp.base import DataSourceAccess
from sahara_es.edp.storage import (
    S3A_CREDENTIALS_PROVIDER,
    S3AJarsMissing,
    StoragePolicy,
    StorageRefused,
    StorageUnavailable,
    check_endpoint,
    check_url,
    policy_from_env,
    s3a_jars,
    s3a_settings,
)

SECRET = "s3cr3t-value-9d2b"
SWIFT = StoragePolicy(swift_auth_url="http://swift.example.test:8080/auth/v1.0",
                      s3_endpoint="https://s3.example.test",
                      private_hosts=frozenset({"swift.example.test:8080", "s3.example.test",
                                               "other.example.test"}))


def test_errors_say_whether_to_retry() -> None:
    assert StorageRefused.retryable is False
    assert StorageUnavailable.retryable is True


def test_policy_from_env(tmp_path: Path) -> None:
    policy = policy_from_env({
        "SAHARA_ES_SWIFT_AUTH_URL": "http://127.0.0.1:8680/auth/v1.0",
        "SAHARA_ES_S3_ENDPOINT": "http://127.0.0.1:8680",
        "SAHARA_ES_STORAGE_PRIVATE_HOSTS": " 127.0.0.1:8680, Swift.Local ,",
        "SAHARA_ES_JOB_BINARY_ROOT": str(tmp_path)})
    assert policy == StoragePolicy(
        swift_auth_url="http://127.0.0.1:8680/auth/v1.0", s3_endpoint="http://127.0.0.1:8680",
        binary_root=tmp_path, private_hosts=frozenset({"127.0.0.1:8680", "swift.local"}))
    assert policy_from_env({}) == StoragePolicy()


@pytest.mark.parametrize("url", ["http://example.com/x", "hdfs://nn/x", "ftp://h/x",
                                 "internal-db://abc", "manila://share/x", "/etc/passwd",
                                 "swift:///obj", "s3://bad bucket/x", "swift://c/a/../b"])
def test_urls_refused(url: str) -> None:
    policy = StoragePolicy(swift_auth_url=SWIFT.swift_auth_url, binary_root=Path("/srv"),
                           private_hosts=SWIFT.private_hosts)
    with pytest.raises(StorageRefused):
        check_url(url, policy)


def test_schemes_need_their_configuration() -> None:
    with pytest.raises(StorageRefused, match="no Swift"):
        check_url("swift://c/o", StoragePolicy())
    with pytest.raises(StorageRefused, match="no job binary folder"):
        check_url("file:///srv/p/x.py", StoragePolicy())
    check_url("swift://c/o", SWIFT)
    check_url("s3://bucket/key", SWIFT)


@pytest.mark.parametrize("endpoint", [
    "http://127.0.0.1:8680", "http://localhost", "http://169.254.169.254/latest/meta-data",
    "http://[::1]/", "http://[fe80::1]/", "http://10.1.2.3", "http://192.168.0.1",
    "http://0.0.0.0:80", "http://[::ffff:127.0.0.1]/", "http://[fd00:ec2::254]/",
    "http://swift.example.test:9999/",  # allowed on 8080 only
])
def test_special_addresses_refused_unless_allowed(endpoint: str) -> None:
    with pytest.raises(StorageRefused):
        check_endpoint(endpoint, SWIFT)


def test_allowed_hosts_and_bad_endpoints() -> None:
    check_endpoint("http://127.0.0.1:8680", StoragePolicy(
        private_hosts=frozenset({"127.0.0.1:8680"})))
    check_endpoint("http://127.0.0.1:1234", StoragePolicy(private_hosts=frozenset({"127.0.0.1"})))
    check_endpoint("http://8.8.8.8:443", StoragePolicy())  # a public literal: no lookup
    for bad in ["ftp://s3.example.test", "http://", "http://user:pw@s3.example.test",
                "http://s3.example.test:99999"]:
        with pytest.raises(StorageRefused) as refused:
            check_endpoint(bad, SWIFT)
        assert "pw" not in str(refused.value)


def test_s3a_settings_for_swift_are_per_bucket_with_the_swift_user() -> None:
    source = DataSourceAccess("swift://logs.sahara/2024/in", "swift",
                              {"user": "acct:alice", "password": SECRET})
    url, settings = s3a_settings(source, SWIFT)
    assert url == "s3a://logs/2024/in"
    p = "spark.hadoop.fs.s3a.bucket.logs."
    assert settings == {
        p + "endpoint": "http://swift.example.test:8080",
        p + "endpoint.region": "us-east-1",
        p + "path.style.access": "true",
        p + "connection.ssl.enabled": "false",
        p + "aws.credentials.provider": S3A_CREDENTIALS_PROVIDER,
        p + "access.key": "acct:alice",
        p + "secret.key": SECRET,
    }
    assert SECRET not in repr(settings) and SECRET not in str(settings)
    assert SECRET not in repr((url, settings))


@pytest.mark.parametrize(("given", "path_style", "ssl", "endpoint"), [
    ({}, "true", "true", "https://s3.example.test"),
    ({"bucket_in_path": "false", "ssl": "true"}, "false", "true", "https://s3.example.test"),
    ({"bucket_in_path": False, "ssl": False}, "false", "false", "https://s3.example.test"),
    ({"bucket_in_path": True, "ssl": "False", "endpoint": "other.example.test:9000"},
     "true", "false", "http://other.example.test:9000"),
    ({"ssl": "true", "endpoint": "other.example.test"}, "true", "true",
     "https://other.example.test"),
])
def test_s3a_settings_for_s3(given: dict[str, object], path_style: str, ssl: str,
                             endpoint: str) -> None:
    credentials = {"accesskey": "AK", "secretkey": SECRET, **given}
    source = DataSourceAccess("s3://data-1/in/", "s3", credentials)  # type: ignore[arg-type]
    url, settings = s3a_settings(source, SWIFT)
    assert url == "s3a://data-1/in/"
    p = "spark.hadoop.fs.s3a.bucket.data-1."
    assert settings[p + "path.style.access"] == path_style
    assert settings[p + "connection.ssl.enabled"] == ssl
    assert settings[p + "endpoint"] == endpoint
    assert settings[p + "access.key"] == "AK" and settings[p + "secret.key"] == SECRET
    assert all(k.startswith(p) for k in settings)


def test_two_sources_with_different_credentials_do_not_collide() -> None:
    _, a = s3a_settings(DataSourceAccess("s3://a/x", "s3", {"accesskey": "A", "secretkey": "1"}),
                        SWIFT)
    _, b = s3a_settings(DataSourceAccess("swift://b/y", "swift",
                                         {"user": "t:u", "password": "2"}), SWIFT)
    assert not set(a) & set(b)


def test_s3a_settings_refusals() -> None:
    for source in [
        DataSourceAccess("s3://b/k", "s3", {"accesskey": "A"}),
        DataSourceAccess("swift://b/k", "swift", {"user": "u"}),
        DataSourceAccess("hdfs://nn/k", "hdfs", {}),
        DataSourceAccess("s3://b/k", "s3", {"accesskey": "A", "secretkey": SECRET,
                                            "ssl": "maybe"}),
        DataSourceAccess("s3://b/k", "s3", {"accesskey": "A", "secretkey": SECRET,
                                            "endpoint": "http://169.254.169.254"}),
    ]:
        with pytest.raises(StorageRefused) as refused:
            s3a_settings(source, SWIFT)
        assert SECRET not in str(refused.value)
    with pytest.raises(StorageRefused, match="needs an endpoint"):
        s3a_settings(DataSourceAccess("s3://b/k", "s3", {"accesskey": "A", "secretkey": "S"}),
                     StoragePolicy())


def test_s3a_jars_missing_is_clear(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAHARA_ES_S3A_JARS", str(tmp_path))
    with pytest.raises(S3AJarsMissing, match="tools/s3a-jars"):
        s3a_jars()
    (tmp_path / "hadoop-aws-3.5.0.jar").write_bytes(b"")
    assert s3a_jars() == [tmp_path / "hadoop-aws-3.5.0.jar"]
