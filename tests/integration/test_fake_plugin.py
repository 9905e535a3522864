"""The ``fake`` plugin is Sahara's: version ``0.1`` with Hadoop 1's processes, so the
templates Sahara's own API test suites build on it are taken as they are (through
python-saharaclient, over HTTP, on every store); a cluster has exactly one namenode and at
most one jobtracker."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from keystoneauth1 import session as ks_session
from keystoneauth1 import token_endpoint
from saharaclient import client as sahara_client
from saharaclient.api.base import APIException

from sahara_es.store import Store
from tests.apiserver import RunningApi, own, running_api

PLUGIN, VERSION, FLAVOR = "fake", "0.1", "local.small"


@pytest.fixture
def api(store: Store) -> Iterator[RunningApi]:
    with running_api(store, plugins=[PLUGIN]) as running:
        yield running


@pytest.fixture
def client(api: RunningApi) -> Any:
    auth = token_endpoint.Token(api.url, api.token(f"project-{uuid.uuid4().hex[:8]}"))
    return sahara_client.Client("2", session=ks_session.Session(auth=auth))


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def group(name: str, processes: list[str], count: int) -> dict[str, Any]:
    return {"name": name, "flavor_id": FLAVOR, "node_processes": processes, "count": count}


def test_it_offers_saharas_fake_plugin_version_and_processes(client: Any) -> None:
    plugin = client.plugins.get(PLUGIN)
    assert plugin.versions == [VERSION] and plugin.plugin_labels["hidden"]["status"] is True
    details = client.plugins.get_version_details(PLUGIN, VERSION)
    assert details.node_processes == {"HDFS": ["namenode", "datanode"],
                                      "MapReduce": ["tasktracker", "jobtracker"]}
    assert [t.name for t in client.job_types.list({"plugin_name": PLUGIN})] == ["Shell"]


def test_saharas_api_test_templates_and_cluster_are_taken(client: Any) -> None:
    master = client.node_group_templates.create(
        unique("master"), PLUGIN, VERSION, FLAVOR, node_processes=["namenode", "jobtracker"])
    worker = client.node_group_templates.create(
        unique("worker"), PLUGIN, VERSION, FLAVOR, node_processes=["datanode", "tasktracker"])
    template = client.cluster_templates.create(unique("ct"), PLUGIN, VERSION, node_groups=[
        {"name": "master", "node_group_template_id": master.id, "count": 1},
        {"name": "worker", "node_group_template_id": worker.id, "count": 3}])
    assert [g["node_processes"] for g in template.node_groups] == [
        ["namenode", "jobtracker"], ["datanode", "tasktracker"]]
    cluster = client.clusters.create(unique("c"), PLUGIN, VERSION,
                                     cluster_template_id=template.id)
    assert {g["name"]: g["count"] for g in cluster.node_groups} == {"master": 1, "worker": 3}
    alone = client.clusters.create(unique("c"), PLUGIN, VERSION, node_groups=[
        group("all", ["namenode", "jobtracker", "datanode", "tasktracker"], 1)])
    assert alone.status == "Validating"


@pytest.mark.parametrize(("groups", "named"), [
    ([group("w", ["datanode", "tasktracker"], 2)], "at least 1 namenode"),
    ([group("m", ["namenode"], 2)], "at most 1 namenode"),
    ([group("m", ["namenode"], 1), group("j", ["jobtracker"], 2)], "at most 1 jobtracker"),
    ([group("m", ["manager"], 1)], "no node process manager"),
])
def test_a_cluster_without_one_namenode_or_with_other_processes_is_a_400(
        client: Any, groups: list[dict[str, Any]], named: str) -> None:
    with pytest.raises(APIException) as error:
        client.clusters.create(unique("c"), PLUGIN, VERSION, node_groups=groups)
    assert error.value.error_code == 400 and named in error.value.error_message
    assert own(client.clusters.list()) == []
