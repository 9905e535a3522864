from __future__ import annotations

import pytest

from sahara_es.store import CassandraConfig, UnknownBackend, open_store, parse_store_url


def test_a_cassandra_url_names_hosts_keyspace_replication_and_consistency() -> None:
    name, kwargs = parse_store_url(
        "cassandra://10.0.0.1,10.0.0.2:9142/prod?local_dc=dc1&replication=dc1:3,dc2:3"
        "&claims_serial=LOCAL_SERIAL&partition_size=2000"
    )
    config: CassandraConfig = kwargs["config"]
    assert name == "cassandra"
    assert config.contact_points == ("10.0.0.1", "10.0.0.2")
    assert config.port == 9142
    assert config.keyspace == "prod"
    assert config.replication == {"class": "NetworkTopologyStrategy", "dc1": 3, "dc2": 3}
    assert config.ownership_serial == "SERIAL"
    assert config.claims_serial == "LOCAL_SERIAL"
    assert config.partition_size == 2000


def test_a_single_number_is_simple_strategy() -> None:
    config = parse_store_url("cassandra://127.0.0.1/ks?replication=1")[1]["config"]
    assert config.replication == {"class": "SimpleStrategy", "replication_factor": 1}


@pytest.mark.parametrize("url", [
    "cassandra://127.0.0.1/ks?bogus=1",
    "cassandra://127.0.0.1/ks?ownership_serial=QUORUM",
    "cassandra://127.0.0.1/ks?partition_size=10",
    "postgres://localhost/db",
])
def test_bad_urls_are_refused_clearly(url: str) -> None:
    with pytest.raises(ValueError):
        parse_store_url(url)


def test_sqlite_urls_name_a_file() -> None:
    assert parse_store_url("sqlite:////var/lib/s.db") == ("sqlite", {"path": "/var/lib/s.db"})
    assert parse_store_url("sqlite:///s.db") == ("sqlite", {"path": "s.db"})


def test_an_unknown_backend_fails_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    import sahara_es.store.factory as factory

    monkeypatch.setattr(factory, "parse_store_url", lambda url: ("nosuch", {}))
    with pytest.raises(UnknownBackend):
        open_store("nosuch://")
