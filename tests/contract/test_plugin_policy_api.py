"""What the API lets a tenant hand to a plugin: config values that would run commands, load
code or read host files are refused with a 400 naming the config and the token, before
anything is created; and the fake plugin (which lets any caller make steps fail or hang) is
there only when the configuration enables it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from sahara_es.api.app import ApiConfig, stop_app
from sahara_es.api.compose import app_for
from sahara_es.commands.errors import Invalid
from sahara_es.infra.local import FLAVORS
from sahara_es.plugins.catalog import OPT_IN, PluginCatalog, load_plugins
from sahara_es.plugins.spark import spark_version
from sahara_es.store import Store

EXPLOITS = [
    ("-XX:+UnlockDiagnosticVMOptions -XX:AbortVMOnException=java.lang.ClassNotFoundException"
     " -XX:OnError=touch${IFS}/tmp/pwned -Dx=1 NoSuchMainClass",
     "-XX:+UnlockDiagnosticVMOptions"),
    ("@/some/file", "@/some/file"),
]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def app(store: Store) -> Iterator[Flask]:
    app = app_for(ApiConfig(auth="noauth", run_projector=False), store=store)
    yield app
    stop_app(app)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def spark_groups(**worker: Any) -> list[dict[str, Any]]:
    return [{"name": "master", "flavor_id": "local.small", "node_processes": ["master"],
             "count": 1},
            {"name": "workers", "flavor_id": "local.small", "node_processes": ["worker"],
             "count": 2, **worker}]


def spark(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "plugin_name": "spark", "plugin_version": spark_version(), **fields}


def clusters_of(client: FlaskClient, headers: dict[str, str]) -> list[dict[str, Any]]:
    """The clusters the project of ``headers`` owns (not the public ones other tests made)."""
    listed: list[dict[str, Any]] = client.get("/v2/clusters", headers=headers
                                              ).get_json()["clusters"]
    return [c for c in listed if c["project_id"] == headers["X-Project-Id"]]


@pytest.mark.parametrize(("options", "token"), EXPLOITS)
def test_the_reported_payloads_get_400_and_nothing_is_created(
        client: FlaskClient, options: str, token: str) -> None:
    headers = {"X-Project-Id": unique("p")}
    name = unique("c")
    configs = {"Spark": {"Daemon Java options": options}}
    refused = client.post("/v2/clusters", headers=headers,
                          json=spark(name, cluster_configs=configs, node_groups=spark_groups()))
    assert refused.status_code == 400, refused.get_json()
    message = str(refused.get_json())
    assert "Daemon Java options" in message and token in message
    assert clusters_of(client, headers) == []

    # The same payload as a node group's node_configs, and in a cluster template.
    refused = client.post("/v2/clusters", headers=headers, json=spark(
        name, node_groups=spark_groups(node_configs=configs)))
    assert refused.status_code == 400, refused.get_json()
    assert token in str(refused.get_json())
    for body in (spark(unique("ct"), cluster_configs=configs, node_groups=spark_groups()),
                 spark(unique("ct"), cluster_configs=configs),
                 spark(unique("ct"), node_groups=spark_groups(node_configs=configs))):
        refused = client.post("/v2/cluster-templates", headers=headers, json=body)
        assert refused.status_code == 400, refused.get_json()
        assert token in str(refused.get_json())
    refused = client.post("/v2/node-group-templates", headers=headers, json=spark(
        unique("ngt"), flavor_id="local.small", node_processes=["worker"],
        node_configs=configs))
    assert refused.status_code == 400, refused.get_json()
    for kind in ("cluster_templates", "node_group_templates"):
        path = kind.replace("_", "-")
        listed = client.get(f"/v2/{path}", headers=headers).get_json()[kind]
        assert [t for t in listed if t["project_id"] == headers["X-Project-Id"]] == []
    assert clusters_of(client, headers) == []

    # Nothing was reserved either: the name is free for a cluster that asks for no harm.
    accepted = client.post("/v2/clusters", headers=headers, json=spark(
        name, cluster_configs={"Spark": {"Daemon Java options": "-Xmx2g -XX:+UseG1GC"}},
        node_groups=spark_groups()))
    assert accepted.status_code == 202, accepted.get_json()
    assert [c["name"] for c in clusters_of(client, headers)] == [name]


def test_a_template_update_cannot_bring_the_payload_in(client: FlaskClient) -> None:
    headers = {"X-Project-Id": unique("p")}
    made = client.post("/v2/cluster-templates", headers=headers,
                       json=spark(unique("ct"), node_groups=spark_groups()))
    assert made.status_code == 202, made.get_json()
    template_id = made.get_json()["cluster_template"]["id"]
    refused = client.put(f"/v2/cluster-templates/{template_id}", headers=headers, json={
        "cluster_configs": {"Spark": {"Daemon Java options": EXPLOITS[1][0]}}})
    assert refused.status_code == 400, refused.get_json()
    stored = client.get(f"/v2/cluster-templates/{template_id}", headers=headers).get_json()
    assert stored["cluster_template"].get("cluster_configs") in (None, {})


@pytest.mark.parametrize(("configs", "named"), [
    ({"Spark": {"Spark home": "/tmp/evil"}}, "Spark home"),
    ({"Spark": {"Daemon memory": "1g -XX:OnError=id"}}, "Daemon memory"),
    ({"Spark": {"Worker memory": "512m\n"}}, "Worker memory"),
    ({"Spark": {"Master port": "7077; id"}}, "Master port"),
    ({"Spark": {"Daemon java options": "-Xmx1g"}}, "Daemon java options"),
    ({"Spark": {"Worker cores": {"nested": 1}}}, "Worker cores"),
])
def test_other_spark_configs_are_checked(client: FlaskClient, configs: dict[str, Any],
                                         named: str) -> None:
    refused = client.post("/v2/clusters", headers={"X-Project-Id": unique("p")}, json=spark(
        unique("c"), cluster_configs=configs, node_groups=spark_groups()))
    assert refused.status_code == 400, refused.get_json()
    assert named in str(refused.get_json())


@pytest.mark.parametrize(("configs", "named"), [
    ({"Dask": {"Python": "/bin/sh"}}, "Python"),
    ({"Dask": {"Worker memory": "--preload=evil"}}, "Worker memory"),
    ({"Dask": {"Scheduler port": "8786 --preload x"}}, "Scheduler port"),
])
def test_dask_configs_are_checked(configs: dict[str, Any], named: str) -> None:
    catalog = PluginCatalog(load_plugins(["dask"]), dict(FLAVORS))
    version = catalog.plugins["dask"].versions()[0]
    groups = [{"name": "s", "node_processes": ["scheduler"], "count": 1},
              {"name": "w", "node_processes": ["worker"], "count": 1}]
    with pytest.raises(Invalid, match=named):
        catalog.check_cluster("dask", version, groups, configs)
    catalog.check_cluster("dask", version, groups, {"Dask": {"Worker memory": "1GiB",
                                                             "Worker threads": 2}})


def test_scaling_checks_the_added_node_groups_and_the_cluster_configs() -> None:
    catalog = PluginCatalog(load_plugins(["spark"]), dict(FLAVORS))
    version = spark_version()
    groups = [{"name": "m", "node_processes": ["master"], "count": 1},
              {"name": "w", "node_processes": ["worker"], "count": 1}]
    bad = {"Spark": {"Daemon Java options": "-javaagent:/tmp/a.jar"}}
    added = [{"name": "more", "node_processes": ["worker"], "count": 1,
              "node_configs": bad}]
    with pytest.raises(Invalid, match="javaagent"):
        catalog.check_scaling("spark", version, groups, {}, added)
    with pytest.raises(Invalid, match="javaagent"):
        catalog.check_scaling("spark", version, groups, {"w": 2}, [], bad)
    catalog.check_scaling("spark", version, groups, {"w": 2}, [])


def test_the_fake_plugin_is_off_unless_configured(store: Store) -> None:
    assert "fake" in OPT_IN
    assert "fake" not in load_plugins()
    assert "fake" in load_plugins(all_installed=True)
    fake_cluster = {"name": unique("c"), "plugin_name": "fake", "plugin_version": "0.1",
                    "cluster_configs": {"Fake": {"fail_start": "namenode"}},
                    "node_groups": [{"name": "manager", "flavor_id": "local.small",
                                     "node_processes": ["namenode"], "count": 1}]}
    headers = {"X-Project-Id": unique("p")}

    default = app_for(ApiConfig(auth="noauth", run_projector=False), store=store)
    try:
        client = default.test_client()
        names = [p["name"] for p in client.get("/v2/plugins").get_json()["plugins"]]
        assert "fake" not in names and {"spark", "dask"} <= set(names)
        assert client.get("/v2/plugins/fake").status_code == 404
        refused = client.post("/v2/clusters", headers=headers, json=fake_cluster)
        assert refused.status_code in (400, 404), refused.get_json()
        assert clusters_of(client, headers) == []
    finally:
        stop_app(default)

    enabled = app_for(ApiConfig(auth="noauth", run_projector=False,
                                plugins=["spark", "fake"]), store=store)
    try:
        client = enabled.test_client()
        names = [p["name"] for p in client.get("/v2/plugins").get_json()["plugins"]]
        assert sorted(names) == ["fake", "spark"]
        accepted = client.post("/v2/clusters", headers=headers, json=fake_cluster)
        assert accepted.status_code == 202, accepted.get_json()
    finally:
        stop_app(enabled)
