from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import click
import pytest

from sahara_es.cli import config, settings
from sahara_es.cli import engine as cli_engine
from sahara_es.cli.context import Context
from sahara_es.cli.main import main
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


# -- the service's configuration: flag > environment > file > default ------------------------

SAMPLE = Path(__file__).resolve().parents[2] / "etc" / "sahara-es.conf.sample"
GENERATOR = SAMPLE.parent / "oslo-config-generator" / "sahara-es.conf"


def _engine_settings(conf_file: Path, args: list[str]) -> dict[str, Any]:
    """What ``sahara-es --config-file conf_file engine ARGS`` would run with: its flags and
    the group's, parsed by the real command, its body replaced by a look at the settings."""
    seen: dict[str, Any] = {}

    class Stop(Exception):
        pass

    def capture(ctx: click.Context, /, **_flags: Any) -> None:
        conf = config.apply_flags(ctx, ctx.obj.conf)
        seen.update(concurrency=conf.engine.concurrency, lease_ttl=conf.engine.lease_ttl,
                    region=conf.engine.region, store=ctx.obj.url,
                    timeouts=settings.step_limits(conf).per_step,
                    poll=settings.job_limits(conf).poll_interval,
                    isolation=conf.engine.node_network_isolation)
        raise Stop

    command = copy.copy(cli_engine.engine)
    command.callback = click.pass_context(capture)
    group = click.Group(params=main.params, callback=main.callback)
    group.add_command(command, "engine")
    with pytest.raises(Stop):
        group.main(["--config-file", str(conf_file), "engine", *args], standalone_mode=False)
    return seen


@pytest.fixture
def conf_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for variable in config.ENVIRONMENT.values():
        monkeypatch.delenv(variable, raising=False)
    path = tmp_path / "sahara-es.conf"
    path.write_text("[database]\nconnection = sqlite:////from/file.db\n"
                    "[engine]\nconcurrency = 3\nlease_ttl = 7.5\nregion = file-region\n"
                    "step_timeouts = spark.start-worker:300\n"
                    "[edp]\njob_poll_interval = 2.5\n")
    return path


def test_without_file_environment_or_flag_an_option_has_its_default(tmp_path: Path) -> None:
    empty = tmp_path / "empty.conf"
    empty.write_text("")
    conf = config.load([str(empty)], environ={})
    assert conf.engine.concurrency == 8
    assert conf.api.port == 8386
    assert conf.api.auth_strategy == "token"
    assert conf.database.connection is None


def test_the_file_overrides_the_defaults(conf_file: Path) -> None:
    seen = _engine_settings(conf_file, [])
    assert seen["concurrency"] == 3 and seen["lease_ttl"] == 7.5
    assert seen["store"] == "sqlite:////from/file.db"
    assert seen["timeouts"] == {"spark.start-worker": 300.0}
    assert seen["poll"] == 2.5


def test_the_environment_overrides_the_file(conf_file: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAHARA_ES_STORE", "sqlite:////from/env.db")
    monkeypatch.setenv("SAHARA_ES_REGION", "env-region")
    monkeypatch.setenv("SAHARA_ES_NODE_NETWORK_ISOLATION", "off")
    seen = _engine_settings(conf_file, [])
    assert seen["store"] == "sqlite:////from/env.db"
    assert seen["region"] == "env-region"
    assert seen["isolation"] is False
    assert seen["concurrency"] == 3  # what the environment does not say, the file does


def test_a_flag_overrides_the_environment_and_the_file(conf_file: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAHARA_ES_REGION", "env-region")
    monkeypatch.setenv("SAHARA_ES_NODE_NETWORK_ISOLATION", "off")
    seen = _engine_settings(conf_file, [
        "--region", "flag-region", "--concurrency", "5", "--node-network-isolation",
        "--step-timeout-for", "dask.start=9", "--job-poll-interval", "0.5"])
    assert seen["region"] == "flag-region"
    assert seen["concurrency"] == 5
    assert seen["isolation"] is True
    assert seen["timeouts"] == {"dask.start": 9.0}
    assert seen["poll"] == 0.5
    assert seen["lease_ttl"] == 7.5  # not given: the file's


def test_a_bad_value_in_the_file_or_the_environment_is_a_usage_error_naming_it(
        tmp_path: Path) -> None:
    bad = tmp_path / "bad.conf"
    bad.write_text("[engine]\nconcurrency = many\n")
    with pytest.raises(config.ConfigError, match="concurrency"):
        config.load([str(bad)], environ={})
    with pytest.raises(config.ConfigError, match="SAHARA_ES_API_PORT"):
        config.load([], environ={"SAHARA_ES_API_PORT": "eighty"})
    with pytest.raises(config.ConfigError, match=r"nosuch\.conf"):
        config.load([str(tmp_path / "nosuch.conf")], environ={})


def test_later_config_files_win_and_config_dirs_come_last(tmp_path: Path) -> None:
    first, second, folder = tmp_path / "1.conf", tmp_path / "2.conf", tmp_path / "conf.d"
    first.write_text("[api]\nport = 1111\nhost = 10.0.0.1\nworkers = 2\n")
    second.write_text("[api]\nport = 2222\n")
    folder.mkdir()
    (folder / "workers.conf").write_text("[api]\nworkers = 3\n")
    conf = config.load([str(first), str(second)], [str(folder)], environ={})
    assert (conf.api.port, conf.api.host, conf.api.workers) == (2222, "10.0.0.1", 3)


def test_a_cassandra_credentials_file_joins_a_cassandra_url_that_names_none(
        tmp_path: Path) -> None:
    path = tmp_path / "c.conf"
    path.write_text("[database]\nconnection = cassandra://127.0.0.1/ks?replication=1\n"
                    "cassandra_credentials_file = /etc/sahara-es/cassandra\n")
    url = config.store_url(config.load([str(path)], environ={}))
    assert url == "cassandra://127.0.0.1/ks?replication=1&password_file=/etc/sahara-es/cassandra"
    named = config.load([str(path)], environ={
        "SAHARA_ES_STORE": "cassandra://h/ks?password_file=/mine"})
    assert config.store_url(named) == "cassandra://h/ks?password_file=/mine"


def test_gunicorn_workers_see_the_files_and_settings_of_the_command(tmp_path: Path) -> None:
    path = tmp_path / "api.conf"
    path.write_text("[api]\nauth_strategy = keystone\nplugins = spark,fake\n")
    conf = config.load([str(path)], environ={})
    conf.set_override("port", 9999, "api")
    env = {**config.environment_of(conf, ("DEFAULT", "database", "api", "edp")),
           config.CONFIG_FILES_ENV: str(path)}
    workers = config.load_for_workers(env)
    assert workers.api.auth_strategy == "keystone"
    assert workers.api.plugins == ["spark", "fake"]
    assert workers.api.port == 9999


def test_keystone_mode_hands_keystonemiddleware_the_same_configuration(
        tmp_path: Path) -> None:
    path = tmp_path / "k.conf"
    path.write_text("[api]\nauth_strategy = keystone\n"
                    "[keystone_authtoken]\nwww_authenticate_uri = http://ks.example:5000/v3\n")
    conf = config.load([str(path)], environ={})
    api = settings.api_config(conf, store_url="sqlite:///x.db", data_dir=tmp_path)
    assert api.auth == "keystone"
    assert api.keystone["oslo_config_config"] is conf


def test_the_checked_in_sample_is_what_oslo_config_generator_makes(tmp_path: Path) -> None:
    """If this fails, regenerate it: ``oslo-config-generator --config-file
    etc/oslo-config-generator/sahara-es.conf``."""
    from oslo_config import generator

    made = tmp_path / "sahara-es.conf.sample"
    generator.main(["--config-file", str(GENERATOR), "--output-file", str(made)])
    assert made.read_text() == SAMPLE.read_text(), (
        "etc/sahara-es.conf.sample is stale: run oslo-config-generator --config-file"
        " etc/oslo-config-generator/sahara-es.conf")


def test_every_command_finds_the_embedded_store_in_the_configured_state_folder(
        tmp_path: Path) -> None:
    path = tmp_path / "s.conf"
    path.write_text(f"[DEFAULT]\ndata_dir = {tmp_path / 'state'}\n")
    context = Context(config.load([str(path)], environ={}))
    assert context.url == f"sqlite:///{tmp_path / 'state' / 'store.db'}"


# -- the bus: oslo.messaging's transport_url, [bus], the notifications ------------------------

def _transport_url(conf_file: Path, args: list[str]) -> str | None:
    """``transport_url`` as ``sahara-es ARGS`` (group flags) sees it."""
    seen: dict[str, Any] = {}

    @click.command("look")
    @click.pass_obj
    def look(obj: Context) -> None:
        seen["url"] = config.messaging_options(obj.conf).transport_url

    group = click.Group(params=main.params, callback=main.callback)
    group.add_command(look)
    group.main(["--config-file", str(conf_file), *args, "look"], standalone_mode=False)
    found: str | None = seen["url"]
    return found


def test_the_transport_url_comes_from_the_flag_the_environment_or_the_file(
        conf_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sahara_es.rpc.bus import names_a_broker

    assert not names_a_broker(config.load([str(conf_file)], environ={}))  # rabbit://: none
    with conf_file.open("a") as out:
        out.write("[DEFAULT]\ntransport_url = rabbit://u:p@file:5682/\n")
    assert _transport_url(conf_file, []) == "rabbit://u:p@file:5682/"
    monkeypatch.setenv(config.TRANSPORT_URL_ENV, "rabbit://u:p@env:5682/")
    assert _transport_url(conf_file, []) == "rabbit://u:p@env:5682/"
    assert _transport_url(conf_file, ["--transport-url", "rabbit://u:p@flag:5682/"]) == \
        "rabbit://u:p@flag:5682/"
    assert names_a_broker(config.load([str(conf_file)]))


def test_the_bus_and_notification_options_are_read_from_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bus.conf"
    path.write_text("[DEFAULT]\nenable_notifications = true\nnotification_level = WARN\n"
                    "[bus]\nengine_topic = engines-b\nsweep_interval = 5\ncast_retry = 2\n")
    conf = config.load([str(path)], environ={})
    assert conf.enable_notifications and conf.notification_level == "WARN"
    assert (conf.bus.engine_topic, conf.bus.sweep_interval, conf.bus.cast_retry) == \
        ("engines-b", 5.0, 2)
    assert config.load([], environ={}).bus.sweep_interval == 2.0
