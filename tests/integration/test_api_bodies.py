"""Every answer of the v2 API carries Sahara's full body (issue 16): a resource made with only
its required fields is answered, on create, show, list and update, with every key Sahara's
has, Sahara's defaults in those the caller did not set; a provisioned cluster's instances,
progress and verification carry Sahara's ids and dates, stable from one read to the next.
Over HTTP, on both stores."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from sahara_es.api.views.bodies import node_group_id
from sahara_es.plugins.base import ClusterInfo, NodeInfo
from sahara_es.plugins.dask import DaskPlugin
from sahara_es.plugins.spark import SparkPlugin
from sahara_es.store import Store
from tests.apiserver import RunningApi, running_api
from tests.clouds import create_fake_cluster, running_cloud

TIMEOUT = 120.0
FLAVOR = "local.small"

NODE_GROUP_DEFAULTS: dict[str, Any] = {
    "volumes_per_node": 0, "volumes_size": 0, "volume_type": None,
    "volume_mount_prefix": "/volumes/disk", "volume_local_to_instance": False,
    "volumes_availability_zone": None, "boot_from_volume": False, "boot_volume_type": None,
    "boot_volume_availability_zone": None, "boot_volume_local_to_instance": False,
    "image_id": None, "floating_ip_pool": None, "security_groups": None,
    "auto_security_group": False, "availability_zone": None, "is_proxy_gateway": False,
    "use_autoconfig": True, "node_configs": {}, "shares": None, "description": None,
    "is_public": False, "is_protected": False, "is_default": False,
}
"""The issue's keys of node group templates and node groups, with Sahara's defaults."""

CLUSTER_TEMPLATE_DEFAULTS: dict[str, Any] = {
    "anti_affinity": [], "cluster_configs": {}, "default_image_id": None,
    "neutron_management_network": None, "domain_name": None, "shares": None,
    "use_autoconfig": True, "is_public": False, "is_protected": False, "description": None,
}

CLUSTER_DEFAULTS: dict[str, Any] = {
    **CLUSTER_TEMPLATE_DEFAULTS, "anti_affinity_ratio": 1, "trust_id": None,
    "management_public_key": None, "info": {}, "verification": {}, "is_transient": False,
    "user_keypair_id": None, "cluster_template_id": None,
}

EDP_DEFAULTS: dict[str, Any] = {"is_public": False, "is_protected": False, "description": None}

INSTANCE_KEYS = {"id", "instance_id", "instance_name", "internal_ip", "management_ip",
                 "dns_hostname", "storage_devices_number", "volumes", "created_at",
                 "updated_at"}
STEP_KEYS = {"id", "cluster_id", "project_id", "step_name", "step_type", "total",
             "successful", "created_at", "updated_at"}
STEP_EVENT_KEYS = {"id", "step_id", "instance_id", "instance_name", "node_group_id",
                   "event_info", "successful", "created_at", "updated_at"}
CHECK_KEYS = {"id", "verification_id", "name", "status", "description", "created_at",
              "updated_at"}


@pytest.fixture
def api(store: Store) -> Iterator[RunningApi]:
    with running_api(store, plugins=["spark"]) as running:
        yield running


class Client:
    """Plain HTTP as a project of its own."""

    def __init__(self, api: RunningApi) -> None:
        self.url = api.url
        self.headers = api.headers(api.token(f"bodies-{uuid.uuid4().hex[:8]}"))

    def call(self, method: str, path: str, status: int, body: dict[str, Any] | None = None
             ) -> Any:
        answer = requests.request(method, f"{self.url}/{path}", json=body,
                                  headers=self.headers, timeout=30)
        assert answer.status_code == status, answer.text
        return answer.json() if answer.content else None


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def carries(body: dict[str, Any], defaults: dict[str, Any]) -> None:
    missing = sorted(set(defaults) - set(body))
    assert not missing, f"missing {missing} in {body}"
    differ = {k: (body[k], v) for k, v in defaults.items() if body[k] != v}
    assert not differ, f"not Sahara's defaults (shown, expected): {differ}"


def every_answer(client: Client, path: str, envelope: str, list_envelope: str,
                 created: dict[str, Any], update: dict[str, Any]) -> list[dict[str, Any]]:
    """The resource as its create, show, list and update answer it."""
    resource_id = created["id"]
    shown = client.call("GET", f"{path}/{resource_id}", 200)[envelope]
    listed = next(r for r in client.call("GET", path, 200)[list_envelope]
                  if r["id"] == resource_id)
    updated = client.call("PATCH", f"{path}/{resource_id}", 202, update)[envelope]
    return [created, shown, listed, updated]


def spark_version(client: Client) -> str:
    version: str = client.call("GET", "plugins/spark", 200)["plugin"]["versions"][0]
    return version


def test_templates_carry_every_key_with_sahara_defaults(api: RunningApi) -> None:
    client = Client(api)
    version = spark_version(client)
    plugin = {"plugin_name": "spark", "plugin_version": version}
    ngt = client.call("POST", "node-group-templates", 202, {
        "name": unique("master"), **plugin, "flavor_id": FLAVOR,
        "node_processes": ["master"]})["node_group_template"]
    for body in every_answer(client, "node-group-templates", "node_group_template",
                             "node_group_templates", ngt, {"flavor_id": FLAVOR}):
        carries(body, NODE_GROUP_DEFAULTS)

    ct = client.call("POST", "cluster-templates", 202, {
        "name": unique("template"), **plugin, "node_groups": [
            {"name": "master", "count": 1, "node_group_template_id": ngt["id"]},
            {"name": "workers", "count": 2, "flavor_id": FLAVOR,
             "node_processes": ["worker"]}]})["cluster_template"]
    answers = every_answer(client, "cluster-templates", "cluster_template",
                           "cluster_templates", ct, {"description": None})
    for body in answers:
        carries(body, {**CLUSTER_TEMPLATE_DEFAULTS, "is_default": False})
        for group in body["node_groups"]:
            carries(group, NODE_GROUP_DEFAULTS)
            assert group["id"] == node_group_id(ct["id"], group["name"])
            assert group["created_at"] == body["created_at"]
            assert "updated_at" in group
    assert [g["node_group_template_id"] for g in ct["node_groups"]] == [ngt["id"], None]


def test_a_cluster_carries_every_key_before_it_is_provisioned(api: RunningApi) -> None:
    client = Client(api)
    version = spark_version(client)
    cluster = client.call("POST", "clusters", 202, {
        "name": unique("cluster"), "plugin_name": "spark", "plugin_version": version,
        "node_groups": [
            {"name": "master", "count": 1, "flavor_id": FLAVOR, "node_processes": ["master"]},
            {"name": "workers", "count": 1, "flavor_id": FLAVOR,
             "node_processes": ["worker"]}]})["cluster"]
    for body in every_answer(client, "clusters", "cluster", "clusters", cluster,
                             {"description": None}):
        carries(body, CLUSTER_DEFAULTS)
        assert body["provision_progress"] == []
        groups = body["node_groups"]
        assert [g["id"] for g in groups] == [node_group_id(cluster["id"], "master"),
                                             node_group_id(cluster["id"], "workers")]
        for group in groups:
            carries(group, {**NODE_GROUP_DEFAULTS, "node_group_template_id": None,
                            "instances": []})
            assert group["created_at"] == body["created_at"]


def test_edp_resources_carry_every_key_with_sahara_defaults(api: RunningApi) -> None:
    client = Client(api)
    source = client.call("POST", "data-sources", 202, {
        "name": unique("input"), "type": "hdfs", "url": "hdfs://namenode/input"})
    for body in every_answer(client, "data-sources", "data_source", "data_sources",
                             source["data_source"], {"url": "hdfs://namenode/other"}):
        carries(body, EDP_DEFAULTS)
        assert "credentials" not in body

    binary = client.call("POST", "job-binaries", 202, {
        "name": unique("script.sh"), "url": "file:///nowhere/script.sh"})["job_binary"]
    for body in every_answer(client, "job-binaries", "job_binary", "binaries", binary,
                             {"url": "file:///nowhere/other.sh"}):
        carries(body, EDP_DEFAULTS)
        assert "extra" not in body

    template = client.call("POST", "job-templates", 202, {
        "name": unique("job"), "type": "Shell", "mains": [binary["id"]]})["job_template"]
    for body in every_answer(client, "job-templates", "job_template", "job_templates",
                             template, {"description": "the job"}):
        carries(body, {**EDP_DEFAULTS, "description": body["description"], "interface": [],
                       "libs": []})
        carries(body["mains"][0], EDP_DEFAULTS)


def test_a_job_carries_every_key_with_sahara_defaults(api: RunningApi) -> None:
    client = Client(api)
    cluster = client.call("POST", "clusters", 202, {
        "name": unique("cluster"), "plugin_name": "spark",
        "plugin_version": spark_version(client), "node_groups": [
            {"name": "master", "count": 1, "flavor_id": FLAVOR, "node_processes": ["master"]},
            {"name": "workers", "count": 1, "flavor_id": FLAVOR,
             "node_processes": ["worker"]}]})["cluster"]
    binary = client.call("POST", "job-binaries", 202, {
        "name": unique("script.sh"), "url": "file:///nowhere/script.sh"})["job_binary"]
    template = client.call("POST", "job-templates", 202, {
        "name": unique("job"), "type": "Shell", "mains": [binary["id"]]})["job_template"]
    job = client.call("POST", "jobs", 202, {"cluster_id": cluster["id"],
                                           "job_template_id": template["id"]})["job"]
    for body in every_answer(client, "jobs", "job", "jobs", job, {"is_public": False}):
        carries(body, {"is_public": False, "is_protected": False, "input_id": None,
                       "output_id": None, "interface": {}, "data_source_urls": {},
                       "return_code": None})
        assert {"job_configs", "info", "start_time", "end_time", "engine_job_id"} <= set(body)


def wait_active(client: Client, cluster_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + TIMEOUT
    while True:
        cluster: dict[str, Any] = client.call(
            "GET", f"clusters/{cluster_id}?show_progress=true", 200)["cluster"]
        if cluster["status"] in ("Active", "Error"):
            assert cluster["status"] == "Active", cluster["status_description"]
            return cluster
        assert time.monotonic() < deadline, f"still {cluster['status']}"
        time.sleep(0.2)


def test_a_provisioned_cluster_shows_its_instances_progress_and_verification_as_sahara(
        store: Store, tmp_path: Path) -> None:
    with running_cloud(store, tmp_path, hosts=2) as cloud, \
            running_api(store, app=cloud.app) as api:
        client = Client(api)
        client.headers = cloud.headers  # the cloud's API takes its project as a header
        cluster_id = create_fake_cluster(cloud.client, cloud.project, workers=1)
        cluster = wait_active(client, cluster_id)
        again = client.call("GET", f"clusters/{cluster_id}?show_progress=true", 200)["cluster"]

        assert cluster["management_public_key"].startswith("ssh-")
        assert cluster["trust_id"] is None and cluster["anti_affinity_ratio"] == 1
        groups = {g["name"]: g for g in cluster["node_groups"]}
        for name, group in groups.items():
            assert group["id"] == node_group_id(cluster_id, name)
            for instance in group["instances"]:
                assert set(instance) >= INSTANCE_KEYS
                assert str(uuid.UUID(instance["id"])) == instance["id"]
                assert instance["storage_devices_number"] == 0
        assert [i["id"] for g in again["node_groups"] for i in g["instances"]] == \
            [i["id"] for g in cluster["node_groups"] for i in g["instances"]]

        steps = cluster["provision_progress"]
        assert steps and all(set(s) >= STEP_KEYS for s in steps)
        assert {s["project_id"] for s in steps} == {cloud.project}
        types = [s["step_type"] for s in steps]
        assert "Engine: create cluster" in types and "Plugin: start cluster" in types
        group_ids = {g["id"] for g in groups.values()}
        events = [e for s in steps for e in s["events"]]
        assert events and all(set(e) >= STEP_EVENT_KEYS for e in events)
        assert {e["node_group_id"] for e in events} <= group_ids

        verification = cluster["verification"]
        assert verification["status"] == "GREEN"
        assert verification["cluster_id"] == cluster_id
        assert verification["created_at"] and verification["updated_at"]
        assert verification["checks"]
        for check in verification["checks"]:
            assert set(check) >= CHECK_KEYS
            assert check["verification_id"] == verification["id"]
        assert again["verification"] == verification

        updated = client.call("PATCH", f"clusters/{cluster_id}", 202,
                              {"description": "renamed"})["cluster"]
        assert updated["management_public_key"] == cluster["management_public_key"]
        assert [g["id"] for g in updated["node_groups"]] == [g["id"] for g in groups.values()]
        client.call("DELETE", f"clusters/{cluster_id}", 204)


def node(name: str, processes: list[str], address: str) -> NodeInfo:
    return NodeInfo(name, "group", processes, address, 22, "user", "")


def test_the_plugins_fill_the_cluster_info_as_sahara_did() -> None:
    spark = ClusterInfo("c", "c", "3", {}, [
        node("m", ["master", "namenode"], "10.0.0.5"), node("w", ["worker"], "10.0.0.6")])
    assert SparkPlugin().cluster_urls(spark) == {
        "Spark": {"Web UI": "http://10.0.0.5:8080", "Master URL": "spark://10.0.0.5:7077"},
        "HDFS": {"Web UI": "http://10.0.0.5:9870", "NameNode": "hdfs://10.0.0.5:8020"}}
    without_hdfs = ClusterInfo("c", "c", "3", {"Spark": {"Master webui port": 8090}},
                               [node("m", ["master"], "10.0.0.5")])
    assert SparkPlugin().cluster_urls(without_hdfs) == {
        "Spark": {"Web UI": "http://10.0.0.5:8090", "Master URL": "spark://10.0.0.5:7077"}}
    dask = ClusterInfo("c", "c", "1", {}, [node("s", ["scheduler"], "10.0.0.7")])
    assert DaskPlugin().cluster_urls(dask) == {
        "Dask": {"Dashboard": "http://10.0.0.7:8787", "Scheduler": "tcp://10.0.0.7:8786"}}
