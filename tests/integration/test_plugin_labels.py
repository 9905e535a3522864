"""Plugin labels, as Sahara's ``PATCH /v2/plugins/{name}``: an admin disables, re-enables or
deprecates a plugin or one of its versions through python-saharaclient, over HTTP, on every
store; what the labels say is enforced on templates, clusters, scaling and jobs, and shown
by every API process sharing the store.

Labels live in the store (the stream ``plugin-fake``) which the session's tests share: each
test here gives the ``fake`` plugin its default labels back when it ends.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from keystoneauth1 import session as ks_session
from keystoneauth1 import token_endpoint
from saharaclient import client as sahara_client
from saharaclient.api.base import APIException

from sahara_es.commands import resources
from sahara_es.commands.caller import SYSTEM
from sahara_es.events import resources as ev
from sahara_es.events.plugins import stream as labels_stream
from sahara_es.events.resources import Kind
from sahara_es.store import Store
from tests.apiserver import RunningApi, own, running_api

PLUGIN, VERSION, FLAVOR = "fake", "0.1", "local.small"
DEFAULTS = {"plugin_labels": {"enabled": {"status": True}, "hidden": {"status": True},
                              "deprecated": {"status": False}},
            "version_labels": {VERSION: {"enabled": {"status": True},
                                         "deprecated": {"status": False}}}}
MASTER = {"name": "master", "flavor_id": FLAVOR, "node_processes": ["namenode", "jobtracker"],
          "count": 1}
WORKERS = {"name": "workers", "flavor_id": FLAVOR,
           "node_processes": ["datanode", "tasktracker"], "count": 2}


@pytest.fixture
def api(store: Store) -> Iterator[RunningApi]:
    with running_api(store, plugins=[PLUGIN]) as running:
        yield running


@pytest.fixture
def admin(api: RunningApi) -> Iterator[Any]:
    """An admin's client; the plugin's labels are back to their defaults after the test."""
    client = client_for(api, api.token("admin-project", "admin"))
    try:
        yield client
    finally:
        client.plugins.update(PLUGIN, DEFAULTS)


@pytest.fixture
def user(api: RunningApi) -> Any:
    return client_for(api, api.token(f"project-{uuid.uuid4().hex[:8]}"))


def client_for(api: RunningApi, token: str) -> Any:
    return sahara_client.Client("2", session=ks_session.Session(
        auth=token_endpoint.Token(api.url, token)))


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def refused(call: Any, status: int) -> str:
    """The error message of a client call that must fail with ``status``."""
    with pytest.raises(APIException) as error:
        call()
    assert error.value.error_code == status, error.value.error_message
    return str(error.value.error_message)


def status(plugin: Any, label: str, version: str | None = None) -> bool:
    labels = plugin.version_labels[version] if version else plugin.plugin_labels
    return bool(labels[label]["status"])


def new_template(client: Any) -> Any:
    return client.node_group_templates.create(unique("master"), PLUGIN, VERSION, FLAVOR,
                                              node_processes=["namenode", "jobtracker"])


def new_cluster(client: Any) -> Any:
    return client.clusters.create(unique("c"), PLUGIN, VERSION,
                                  node_groups=[dict(MASTER), dict(WORKERS)])


def made_active(store: Store, cluster_id: str) -> None:
    """What provisioning records once the cluster is up (no engine runs behind this API)."""
    aggregate = resources.load(store, Kind.CLUSTER, cluster_id)
    resources.append(store, aggregate, [ev.ClusterStatusChanged("Active")], SYSTEM)


def test_a_disabled_version_refuses_templates_and_clusters_until_it_is_enabled_again(
        admin: Any, user: Any) -> None:
    shown = admin.plugins.update(PLUGIN, {"version_labels": {
        VERSION: {"enabled": {"status": False}}}})
    assert not status(shown, "enabled", VERSION) and status(shown, "enabled")
    why = "Version 0.1 of plugin fake is not enabled"
    assert why in refused(lambda: new_template(user), 400)
    assert why in refused(lambda: new_cluster(user), 400)
    assert why in refused(lambda: user.cluster_templates.create(
        unique("ct"), PLUGIN, VERSION, node_groups=[dict(MASTER)]), 400)
    assert own(user.node_group_templates.list()) == [] and own(user.clusters.list()) == []

    shown = admin.plugins.update(PLUGIN, {"version_labels": {
        VERSION: {"enabled": {"status": True}}}})
    assert status(shown, "enabled", VERSION)
    assert new_template(user).plugin_name == PLUGIN
    assert new_cluster(user).status == "Validating"


def test_a_disabled_plugin_refuses_new_clusters_scaling_and_jobs_of_existing_ones(
        api: RunningApi, admin: Any, user: Any) -> None:
    cluster = new_cluster(user)
    made_active(api.store, cluster.id)
    binary = user.job_binaries.create(unique("script"), "file:///tmp/script.sh")
    template = user.job_templates.create(unique("shell"), "Shell", mains=[binary.id])

    shown = admin.plugins.update(PLUGIN, {"plugin_labels": {"enabled": {"status": False}}})
    assert not status(shown, "enabled")
    why = "Plugin fake is not enabled"
    assert why in refused(lambda: new_cluster(user), 400)
    assert why in refused(lambda: user.clusters.scale(cluster.id, {
        "resize_node_groups": [{"name": "workers", "count": 3}]}), 400)
    assert why in refused(lambda: user.jobs.create(template.id, cluster.id), 400)
    assert own(user.jobs.list()) == []
    # what exists stays readable and deletable
    assert user.clusters.get(cluster.id).status == "Active"

    admin.plugins.update(PLUGIN, {"plugin_labels": {"enabled": {"status": True}}})
    assert user.jobs.create(template.id, cluster.id).info["status"] == "PENDING"


def test_a_deprecated_version_still_works_and_says_so(admin: Any, user: Any) -> None:
    shown = admin.plugins.update(PLUGIN, {"version_labels": {
        VERSION: {"deprecated": {"status": True}}}})
    assert status(shown, "deprecated", VERSION) and not status(shown, "deprecated")
    assert new_template(user).plugin_name == PLUGIN
    assert new_cluster(user).status == "Validating"
    assert status(user.plugins.get(PLUGIN), "deprecated", VERSION)
    details = user.plugins.get_version_details(PLUGIN, VERSION)
    assert status(details, "deprecated", VERSION)
    assert details.version_labels[VERSION]["deprecated"]["mutable"] is True
    listed = {p.name: p for p in user.plugins.list()}
    assert status(listed[PLUGIN], "deprecated", VERSION)


def test_only_an_admin_changes_labels(api: RunningApi, user: Any) -> None:
    before = api.store.stream_version(labels_stream(PLUGIN))
    detail = refused(lambda: user.plugins.update(PLUGIN, {"plugin_labels": {
        "enabled": {"status": False}}}), 403)
    assert "admin" in detail
    assert api.store.stream_version(labels_stream(PLUGIN)) == before
    assert status(user.plugins.get(PLUGIN), "enabled")


@pytest.mark.parametrize(("values", "named"), [
    ({"plugin_labels": {"stable": {"status": False}}}, "not mutable"),
    ({"plugin_labels": {"shiny": {"status": True}}}, "'shiny'"),
    ({"version_labels": {VERSION: {"stable": {"status": False}}}}, "not available"),
    ({"version_labels": {"9.9": {"enabled": {"status": False}}}}, "'9.9'"),
    ({"plugin_labels": {"enabled": {"status": "maybe"}}}, "status"),
    ({"plugin_labels": {"enabled": {"status": False, "mutable": False}}}, "mutable"),
    ({"name": "other"}, "name"),
])
def test_immutable_unknown_or_malformed_labels_are_a_400_and_change_nothing(
        api: RunningApi, admin: Any, values: dict[str, Any], named: str) -> None:
    before = api.store.stream_version(labels_stream(PLUGIN))
    assert named in refused(lambda: admin.plugins.update(PLUGIN, values), 400)
    assert api.store.stream_version(labels_stream(PLUGIN)) == before
    shown = admin.plugins.get(PLUGIN)
    assert status(shown, "enabled") and status(shown, "stable")


def test_labels_of_an_unknown_plugin_are_a_404(admin: Any) -> None:
    refused(lambda: admin.plugins.update("nosuch", DEFAULTS), 404)


def test_a_change_through_one_api_shows_and_applies_at_once_in_another(
        store: Store, api: RunningApi, admin: Any) -> None:
    with running_api(store, plugins=[PLUGIN]) as other:
        reader = client_for(other, other.token(f"project-{uuid.uuid4().hex[:8]}"))
        assert status(reader.plugins.get(PLUGIN), "enabled")  # read, and cached, first
        admin.plugins.update(PLUGIN, {"plugin_labels": {"enabled": {"status": False}}})
        assert not status(reader.plugins.get(PLUGIN), "enabled")
        assert not status({p.name: p for p in reader.plugins.list()}[PLUGIN], "enabled")
        assert "Plugin fake is not enabled" in refused(lambda: new_template(reader), 400)
        admin.plugins.update(PLUGIN, {"plugin_labels": {"enabled": {"status": True}}})
        assert new_template(reader).plugin_name == PLUGIN


def test_concurrent_admin_changes_are_all_recorded(api: RunningApi, admin: Any) -> None:
    before = api.store.stream_version(labels_stream(PLUGIN))
    changes = [{"plugin_labels": {"hidden": {"status": False}}} if n % 2 else
               {"version_labels": {VERSION: {"deprecated": {"status": True}}}}
               for n in range(8)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        shown = list(pool.map(lambda values: admin.plugins.update(PLUGIN, values), changes))
    assert all(status(s, "enabled") for s in shown)  # every one answered 202
    assert api.store.stream_version(labels_stream(PLUGIN)) == before + len(changes)
    final = admin.plugins.get(PLUGIN)
    assert status(final, "deprecated", VERSION) and not status(final, "hidden")
