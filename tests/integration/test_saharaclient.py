"""The real python-saharaclient (API v2) against the API served over HTTP in token mode.

Whatever the client accepts (status codes, envelopes, error bodies) is what OpenStack tooling
built on it accepts; so these tests drive the client itself, not our idea of it, on every
store.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from keystoneauth1 import session as ks_session
from keystoneauth1 import token_endpoint
from saharaclient import client as sahara_client
from saharaclient.api.base import APIException

from sahara_es.commands import resources
from sahara_es.commands.caller import SYSTEM
from sahara_es.events import resources as ev
from sahara_es.events.resources import Kind
from sahara_es.store import Store
from tests.apiserver import RunningApi, running_api

PLUGIN = "spark"
FLAVOR = "local.small"


@pytest.fixture
def api(store: Store) -> Iterator[RunningApi]:
    with running_api(store) as running:
        yield running


@pytest.fixture
def client(api: RunningApi) -> Any:
    return client_for(api, api.token(f"project-{uuid.uuid4().hex[:8]}"))


def client_for(api: RunningApi, token: str) -> Any:
    auth = token_endpoint.Token(api.url, token)
    return sahara_client.Client("2", session=ks_session.Session(auth=auth))


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def spark_version(client: Any) -> str:
    version: str = client.plugins.get(PLUGIN).versions[0]
    return version


def make_node_group_templates(client: Any, version: str) -> tuple[Any, Any]:
    master = client.node_group_templates.create(
        unique("master"), PLUGIN, version, FLAVOR, node_processes=["master"])
    worker = client.node_group_templates.create(
        unique("worker"), PLUGIN, version, FLAVOR, node_processes=["worker"])
    return master, worker


def make_cluster_template(client: Any, version: str) -> tuple[Any, Any, Any]:
    master, worker = make_node_group_templates(client, version)
    template = client.cluster_templates.create(
        unique("spark"), PLUGIN, version, description="two workers",
        node_groups=[
            {"name": "master", "count": 1, "node_group_template_id": master.id},
            {"name": "worker", "count": 2, "node_group_template_id": worker.id},
        ])
    return master, worker, template


def make_active(store: Store, cluster_id: str) -> None:
    """What the provisioning layer will record once the cluster is up. That layer is not
    attached to this server (it answers with ``RecordOnly``), so the test plays its part:
    it appends the status change to the cluster's stream as the service itself would."""
    aggregate = resources.load(store, Kind.CLUSTER, cluster_id)
    resources.append(store, aggregate, [ev.ClusterStatusChanged("Active")], SYSTEM)


def test_the_client_walks_templates_clusters_and_jobs_from_creation_to_deletion(
        api: RunningApi, client: Any) -> None:
    plugins = client.plugins.list()
    assert PLUGIN in [p.name for p in plugins]
    version = spark_version(client)
    details = client.plugins.get_version_details(PLUGIN, version)
    assert details.node_processes["Spark"] == ["master", "worker"]

    master, worker, template = make_cluster_template(client, version)
    assert master.node_processes == ["master"] and worker.flavor_id == FLAVOR
    assert [g["count"] for g in template.node_groups] == [1, 2]
    # Before a cluster uses it: a used template cannot change.
    updated = client.cluster_templates.update(template.id, description="one master")
    assert updated.description == "one master"  # the client insists on PATCH → 202

    cluster = client.clusters.create(unique("cluster"), PLUGIN, version,
                                     cluster_template_id=template.id)
    assert cluster.status == "Validating"
    assert {g["name"]: g["count"] for g in cluster.node_groups} == {"master": 1, "worker": 2}

    assert {master.id, worker.id} <= {t.id for t in client.node_group_templates.list()}
    assert template.id in [t.id for t in client.cluster_templates.list()]
    assert cluster.id in [c.id for c in client.clusters.list()]
    assert client.node_group_templates.get(master.id).name == master.name
    assert client.cluster_templates.get(template.id).name == template.name
    shown = client.clusters.get(cluster.id, show_progress=True)
    assert shown.name == cluster.name and shown.provision_progress == []
    assert client.clusters.get(cluster.id).cluster_template_id == template.id

    source = client.data_sources.create(unique("input"), "words", "swift", "swift://c/in")
    binary = client.job_binaries.create(unique("wordcount"), "file:///tmp/wordcount.py",
                                        description="the main")
    job_template = client.job_templates.create(unique("wordcount"), "Spark", mains=[binary.id])
    assert [m["id"] for m in job_template.mains] == [binary.id]
    assert source.id in [s.id for s in client.data_sources.list()]
    assert binary.id in [b.id for b in client.job_binaries.list()]
    assert job_template.id in [t.id for t in client.job_templates.list()]

    make_active(api.store, cluster.id)
    assert client.clusters.get(cluster.id).status == "Active"
    job = client.jobs.create(job_template.id, cluster.id, input_id=source.id,
                             configs={"args": ["a"]})
    assert job.info["status"] == "PENDING"
    assert job.id in [j.id for j in client.jobs.list()]
    client.jobs._patch(f"/jobs/{job.id}", {"info": {"status": "cancel"}})
    assert client.jobs.get(job.id).info["status"] in ("TOBEKILLED", "KILLED")

    with pytest.raises(APIException) as used:
        client.cluster_templates.delete(template.id)
    assert used.value.error_code == 409

    client.jobs.delete(job.id)
    client.job_templates.delete(job_template.id)
    client.job_binaries.delete(binary.id)
    client.data_sources.delete(source.id)
    client.clusters.delete(cluster.id)
    client.cluster_templates.delete(template.id)
    client.node_group_templates.delete(master.id)
    client.node_group_templates.delete(worker.id)
    for manager in (client.jobs, client.job_templates, client.job_binaries,
                    client.data_sources, client.clusters, client.cluster_templates,
                    client.node_group_templates):
        # Only the project's own: other tests' public resources are listed to everyone.
        assert [r.id for r in manager.list() if r.project_id == cluster.project_id] == []


def test_a_name_already_used_in_the_project_is_a_409(client: Any) -> None:
    version = spark_version(client)
    name = unique("twice")
    client.node_group_templates.create(name, PLUGIN, version, FLAVOR, node_processes=["master"])
    with pytest.raises(APIException) as clash:
        client.node_group_templates.create(name, PLUGIN, version, FLAVOR,
                                           node_processes=["worker"])
    assert clash.value.error_code == 409
    assert clash.value.error_name == "NAME_ALREADY_EXISTS"


def test_an_unknown_field_in_a_body_is_a_400_validation_error(client: Any) -> None:
    with pytest.raises(APIException) as invalid:
        client.data_sources._create("/data-sources", {
            "name": unique("ds"), "type": "swift", "url": "swift://c/o", "colour": "red"},
            "data_source")
    assert invalid.value.error_code == 400
    assert invalid.value.error_name == "VALIDATION_ERROR"
    assert "colour" in invalid.value.error_message


def test_a_count_of_two_creates_two_clusters_named_with_suffixes(client: Any) -> None:
    version = spark_version(client)
    _, _, template = make_cluster_template(client, version)
    name = unique("pair")
    created = client.clusters.create(name, PLUGIN, version, cluster_template_id=template.id,
                                     count=2)
    clusters = [c["cluster"] for c in created.clusters]
    assert [c["name"] for c in clusters] == [f"{name}-1", f"{name}-2"]
    listed = {c.name for c in client.clusters.list()}
    assert {f"{name}-1", f"{name}-2"} <= listed
