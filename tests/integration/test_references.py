"""A resource that a request's body names (a job's cluster, job template and data sources, a
job template's binaries, a cluster's template, a node group's template) and that is unknown,
deleted or another project's private one makes the request a 400, as in Sahara; only the
resource the path names is a 404. Through python-saharaclient, over HTTP, on every store.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from keystoneauth1 import session as ks_session
from keystoneauth1 import token_endpoint
from saharaclient import client as sahara_client
from saharaclient.api.base import APIException

from sahara_es.store import Store
from tests.apiserver import RunningApi, own, running_api

PLUGIN, VERSION, FLAVOR = "fake", "0.1", "local.small"
MASTER = {"name": "master", "flavor_id": FLAVOR, "node_processes": ["namenode"], "count": 1}

@pytest.fixture
def api(store: Store) -> Iterator[RunningApi]:
    with running_api(store, plugins=[PLUGIN]) as running:
        yield running


def client_for(api: RunningApi, project: str | None = None) -> Any:
    token = api.token(project or f"project-{uuid.uuid4().hex[:8]}")
    return sahara_client.Client("2", session=ks_session.Session(
        auth=token_endpoint.Token(api.url, token)))


@pytest.fixture
def client(api: RunningApi) -> Any:
    return client_for(api)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def refused(call: Callable[[], Any], status: int = 400) -> str:
    with pytest.raises(APIException) as error:
        call()
    assert error.value.error_code == status, error.value.error_message
    return str(error.value.error_message)


class Made:
    """A cluster, a Shell job template and a data source of one project."""

    def __init__(self, client: Any) -> None:
        self.cluster = client.clusters.create(unique("c"), PLUGIN, VERSION,
                                              node_groups=[dict(MASTER)])
        binary = client.job_binaries.create(unique("script"), "file:///tmp/script.sh")
        self.template = client.job_templates.create(unique("shell"), "Shell",
                                                    mains=[binary.id])
        self.source = client.data_sources.create(unique("in"), "", "swift", "swift://c/in")


@pytest.fixture
def made(client: Any) -> Made:
    return Made(client)


def test_a_job_on_an_unknown_or_deleted_cluster_is_a_400(client: Any, made: Made) -> None:
    unknown = str(uuid.uuid4())
    assert unknown in refused(lambda: client.jobs.create(made.template.id, unknown))
    client.clusters.delete(made.cluster.id)  # no engine here: gone at once
    assert made.cluster.id in refused(lambda: client.jobs.create(made.template.id,
                                                                 made.cluster.id))
    assert own(client.jobs.list()) == []


def test_a_job_of_an_unknown_or_deleted_job_template_is_a_400(client: Any,
                                                               made: Made) -> None:
    detail = refused(lambda: client.jobs.create(str(uuid.uuid4()), made.cluster.id))
    assert "job template" in detail
    client.job_templates.delete(made.template.id)
    refused(lambda: client.jobs.create(made.template.id, made.cluster.id))
    assert own(client.jobs.list()) == []


def test_a_job_reading_an_unknown_or_deleted_data_source_is_a_400(client: Any,
                                                                   made: Made) -> None:
    detail = refused(lambda: client.jobs.create(made.template.id, made.cluster.id,
                                                input_id=str(uuid.uuid4())))
    assert "data source" in detail
    client.data_sources.delete(made.source.id)
    refused(lambda: client.jobs.create(made.template.id, made.cluster.id,
                                       output_id=made.source.id))
    assert own(client.jobs.list()) == []


def test_another_projects_private_cluster_is_a_400_too(api: RunningApi, made: Made) -> None:
    stranger = client_for(api)
    binary = stranger.job_binaries.create(unique("script"), "file:///tmp/script.sh")
    template = stranger.job_templates.create(unique("shell"), "Shell", mains=[binary.id])
    detail = refused(lambda: stranger.jobs.create(template.id, made.cluster.id))
    assert "does not exist" in detail  # exactly as an unknown one: ids leak nothing


def test_a_job_template_of_an_unknown_binary_is_a_400(client: Any) -> None:
    detail = refused(lambda: client.job_templates.create(unique("shell"), "Shell",
                                                         mains=[str(uuid.uuid4())]))
    assert "job binary" in detail
    assert own(client.job_templates.list()) == []


def test_a_cluster_of_an_unknown_cluster_template_is_a_400(client: Any) -> None:
    refused(lambda: client.clusters.create(unique("c"), PLUGIN, VERSION,
                                           cluster_template_id=str(uuid.uuid4())))


def test_a_cluster_of_an_unknown_node_group_template_is_a_400(client: Any) -> None:
    refused(lambda: client.clusters.create(unique("c"), PLUGIN, VERSION, node_groups=[
        {"name": "master", "count": 1, "node_group_template_id": str(uuid.uuid4())}]))


def test_a_cluster_template_of_an_unknown_node_group_template_is_a_400(client: Any) -> None:
    refused(lambda: client.cluster_templates.create(unique("ct"), PLUGIN, VERSION, node_groups=[
        {"name": "master", "count": 1, "node_group_template_id": str(uuid.uuid4())}]))


def test_the_resource_a_path_names_is_still_a_404(client: Any, made: Made) -> None:
    refused(lambda: client.clusters.get(str(uuid.uuid4())), 404)
    refused(lambda: client.jobs.get(str(uuid.uuid4())), 404)
    refused(lambda: client.cluster_templates.get(str(uuid.uuid4())), 404)
