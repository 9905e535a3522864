"""The API's commands and read models, on both stores: names reserved by LWT, conflicts
reported rather than lost, read-your-writes, lag shown, rebuilds identical."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient

from sahara_es.api.app import ApiConfig, stop_app
from sahara_es.api.compose import app_for
from sahara_es.commands import resources
from sahara_es.commands.caller import SYSTEM
from sahara_es.events import resources as ev
from sahara_es.events.resources import Kind
from sahara_es.projections import RESOURCE_PROJECTIONS, update, verify
from sahara_es.projections.base import INDEX_BUILT
from sahara_es.projections.resources import PUBLIC, DataSources, owned_by
from sahara_es.store import Store
from tests.apiserver import running_api


def unique(prefix: str = "r") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def app(store: Store) -> Iterator[Flask]:
    app = app_for(ApiConfig(auth="noauth"), store=store)
    yield app
    stop_app(app)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def project_headers(project: str | None = None) -> dict[str, str]:
    return {"X-Project-Id": project or unique("p")}


def page(client: FlaskClient, headers: dict[str, str], query: str) -> dict[str, Any]:
    """The body of ``GET /v2/<query>``."""
    body: dict[str, Any] = client.get(f"/v2/{query}", headers=headers).get_json()
    return body


def spark_version(client: FlaskClient) -> str:
    version: str = client.get("/v2/plugins/spark").get_json()["plugin"]["versions"][0]
    return version


def node_group_template(client: FlaskClient, headers: dict[str, str], process: str,
                        **extra: Any) -> dict[str, Any]:
    response = client.post("/v2/node-group-templates", headers=headers, json={
        "name": unique(process), "plugin_name": "spark",
        "plugin_version": spark_version(client), "flavor_id": "local.small",
        "node_processes": [process], **extra})
    assert response.status_code == 202, response.get_json()
    body: dict[str, Any] = response.get_json()["node_group_template"]
    return body


def spark_cluster(client: FlaskClient, headers: dict[str, str]) -> tuple[str, str, str, str]:
    """(master template, worker template, cluster template, cluster) ids."""
    master = node_group_template(client, headers, "master")["id"]
    worker = node_group_template(client, headers, "worker")["id"]
    version = spark_version(client)
    template = client.post("/v2/cluster-templates", headers=headers, json={
        "name": unique("ct"), "plugin_name": "spark", "plugin_version": version,
        "node_groups": [{"name": "m", "node_group_template_id": master, "count": 1},
                        {"name": "w", "node_group_template_id": worker, "count": 2}]})
    assert template.status_code == 202, template.get_json()
    template_id = template.get_json()["cluster_template"]["id"]
    cluster = client.post("/v2/clusters", headers=headers, json={
        "name": unique("c"), "plugin_name": "spark", "plugin_version": version,
        "cluster_template_id": template_id})
    assert cluster.status_code == 202, cluster.get_json()
    return master, worker, template_id, cluster.get_json()["cluster"]["id"]


def test_of_100_concurrent_creates_of_one_name_exactly_one_is_accepted(store: Store) -> None:
    name = unique("race")
    with running_api(store, auth="noauth") as api:
        barrier = threading.Barrier(20)
        codes: list[int] = []
        lock = threading.Lock()

        def create(batch: int) -> None:
            session = requests.Session()
            barrier.wait()
            for _ in range(batch):
                response = session.post(f"{api.url}/data-sources", headers={
                    "X-Project-Id": "racers"}, json={"name": name, "type": "swift",
                                                     "url": "swift://c/o"}, timeout=60)
                with lock:
                    codes.append(response.status_code)

        threads = [threading.Thread(target=create, args=(5,)) for _ in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        listed = requests.get(f"{api.url}/data-sources", params={"name": name},
                              headers={"X-Project-Id": "racers"}, timeout=30).json()
    assert Counter(codes) == {202: 1, 409: 99}
    assert [d["name"] for d in listed["data_sources"]] == [name]


def test_a_name_is_unique_per_project_and_kind_and_free_again_once_deleted(
        client: FlaskClient) -> None:
    alice, bob = project_headers(), project_headers()
    body = {"name": unique("ds"), "type": "swift", "url": "swift://c/o"}
    first = client.post("/v2/data-sources", headers=alice, json=body)
    assert first.status_code == 202
    again = client.post("/v2/data-sources", headers=alice, json=body)
    assert again.status_code == 409
    assert again.get_json()["error_name"] == "NAME_ALREADY_EXISTS"
    assert again.get_json()["errors"][0]["code"] == "sahara-es.name-in-use"
    assert client.post("/v2/data-sources", headers=bob, json=body).status_code == 202
    same_name_other_kind = client.post("/v2/job-binaries", headers=alice, json={
        "name": body["name"], "url": "swift://c/o.jar"})
    assert same_name_other_kind.status_code == 202
    ds_id = first.get_json()["data_source"]["id"]
    assert client.delete(f"/v2/data-sources/{ds_id}", headers=alice).status_code == 204
    assert client.post("/v2/data-sources", headers=alice, json=body).status_code == 202


def test_a_rename_moves_the_reservation(client: FlaskClient) -> None:
    headers = project_headers()
    old, new = unique("old"), unique("new")
    made = client.post("/v2/job-binaries", headers=headers,
                       json={"name": old, "url": "swift://c/o.jar"}).get_json()["job_binary"]
    renamed = client.patch(f"/v2/job-binaries/{made['id']}", headers=headers,
                           json={"name": new})
    assert renamed.status_code == 202 and renamed.get_json()["job_binary"]["name"] == new
    taken = client.post("/v2/job-binaries", headers=headers,
                        json={"name": new, "url": "swift://c/o.jar"})
    assert taken.status_code == 409
    freed = client.post("/v2/job-binaries", headers=headers,
                        json={"name": old, "url": "swift://c/o.jar"})
    assert freed.status_code == 202


def test_concurrent_changes_are_refused_not_lost(store: Store, client: FlaskClient) -> None:
    headers = project_headers()
    made = client.post("/v2/data-sources", headers=headers, json={
        "name": unique("ds"), "type": "swift", "url": "swift://c/o"}).get_json()["data_source"]
    stale = resources.load(store, Kind.DATA_SOURCE, made["id"])
    fresh = resources.load(store, Kind.DATA_SOURCE, made["id"])
    resources.append(store, fresh, [ev.ResourceUpdated({"description": "first"})], SYSTEM)
    with pytest.raises(resources.ChangedConcurrently):
        resources.append(store, stale, [ev.ResourceUpdated({"description": "second"})], SYSTEM)
    shown = client.get(f"/v2/data-sources/{made['id']}", headers=headers).get_json()
    assert shown["data_source"]["description"] == "first"


def test_a_used_template_can_be_neither_changed_nor_deleted(client: FlaskClient) -> None:
    headers = project_headers()
    master, _, template, cluster = spark_cluster(client, headers)
    for path in (f"/v2/node-group-templates/{master}", f"/v2/cluster-templates/{template}"):
        changed = client.patch(path, headers=headers, json={"description": "x"})
        assert changed.status_code == 409
        assert changed.get_json()["error_name"] == "RESOURCE_IN_USE"
        assert client.delete(path, headers=headers).status_code == 409
    assert client.delete(f"/v2/clusters/{cluster}", headers=headers).status_code == 204
    assert client.delete(f"/v2/cluster-templates/{template}", headers=headers).status_code \
        == 204
    assert client.delete(f"/v2/node-group-templates/{master}", headers=headers).status_code \
        == 204


def test_a_protected_resource_changes_only_by_unprotecting_it(client: FlaskClient) -> None:
    headers = project_headers()
    made = node_group_template(client, headers, "worker", is_protected=True)
    path = f"/v2/node-group-templates/{made['id']}"
    assert client.patch(path, headers=headers, json={"description": "x"}).status_code == 409
    assert client.delete(path, headers=headers).status_code == 409
    assert client.patch(path, headers=headers, json={"is_protected": False}).status_code == 202
    assert client.delete(path, headers=headers).status_code == 204


def test_clusters_scale_only_when_active(store: Store, client: FlaskClient) -> None:
    headers = project_headers()
    *_, cluster = spark_cluster(client, headers)
    path = f"/v2/clusters/{cluster}"
    scale = {"resize_node_groups": [{"name": "w", "count": 3}]}
    refused = client.put(path, headers=headers, json=scale)
    assert refused.status_code == 409
    assert "Validating" in refused.get_json()["error_message"]
    aggregate = resources.load(store, Kind.CLUSTER, cluster)
    resources.append(store, aggregate, [ev.ClusterStatusChanged("Active")], SYSTEM)
    accepted = client.put(path, headers=headers, json=scale)
    assert accepted.status_code == 202
    assert accepted.headers["Location"].endswith(f"/v2/clusters/{cluster}")
    assert accepted.get_json()["cluster"]["status"] == "Scaling"
    groups = {g["name"]: g["count"] for g in accepted.get_json()["cluster"]["node_groups"]}
    assert groups == {"m": 1, "w": 3}
    master_scaled = client.put(path, headers=headers, json={
        "resize_node_groups": [{"name": "m", "count": 2}]})
    assert master_scaled.status_code == 409  # Scaling now; and masters never scale


def test_plugin_topology_and_flavors_are_validated(client: FlaskClient) -> None:
    headers = project_headers()
    version = spark_version(client)
    no_master = client.post("/v2/clusters", headers=headers, json={
        "name": unique("c"), "plugin_name": "spark", "plugin_version": version,
        "node_groups": [{"name": "w", "flavor_id": "local.small", "node_processes": ["worker"],
                         "count": 2}]})
    assert no_master.status_code == 400
    assert "at least 1 master" in no_master.get_json()["error_message"]
    bad_flavor = client.post("/v2/node-group-templates", headers=headers, json={
        "name": unique("n"), "plugin_name": "spark", "plugin_version": version,
        "flavor_id": "m1.huge", "node_processes": ["worker"]})
    assert bad_flavor.status_code == 400 and "m1.huge" in bad_flavor.get_json()["error_message"]
    bad_process = client.post("/v2/node-group-templates", headers=headers, json={
        "name": unique("n"), "plugin_name": "spark", "plugin_version": version,
        "flavor_id": "local.small", "node_processes": ["resourcemanager"]})
    assert bad_process.status_code == 400
    bad_name = client.post("/v2/node-group-templates", headers=headers, json={
        "name": "1_bad", "plugin_name": "spark", "plugin_version": version,
        "flavor_id": "local.small", "node_processes": ["worker"]})
    assert bad_name.status_code == 400 and bad_name.get_json()["error_name"] == \
        "VALIDATION_ERROR"


def test_a_client_reads_its_writes_before_the_projector_runs(store: Store) -> None:
    app = app_for(ApiConfig(auth="noauth", run_projector=False), store=store)
    client = app.test_client()
    headers = project_headers()
    made = client.post("/v2/data-sources", headers=headers, json={
        "name": unique("ds"), "type": "swift", "url": "swift://c/o"}).get_json()["data_source"]
    listed = client.get("/v2/data-sources", headers=headers).get_json()["data_sources"]
    own = [d["id"] for d in listed if d["project_id"] == headers["X-Project-Id"]]
    assert own == [made["id"]]  # (other tests' public ones are listed too)
    client.patch(f"/v2/data-sources/{made['id']}", headers=headers, json={"description": "d"})
    shown = client.get(f"/v2/data-sources/{made['id']}", headers=headers).get_json()
    assert shown["data_source"]["description"] == "d"
    stop_app(app)


def test_health_shows_how_far_behind_the_read_models_are(store: Store) -> None:
    app = app_for(ApiConfig(auth="noauth", run_projector=False), store=store)
    client = app.test_client()
    for projection in RESOURCE_PROJECTIONS.values():
        update(store, projection())
    client.post("/v2/data-sources", headers=project_headers(), json={
        "name": unique("ds"), "type": "swift", "url": "swift://c/o"})
    settle = store.describe().get("feed_settle_seconds", 0) or 0
    time.sleep(float(settle) + 0.2)
    behind = client.get("/healthz").get_json()["projections"]["data_sources"]
    assert behind["lag_events"] >= 1 and behind["lag_seconds"] > 0
    for projection in RESOURCE_PROJECTIONS.values():
        update(store, projection())
    caught_up = client.get("/healthz").get_json()["projections"]["data_sources"]
    assert caught_up["lag_events"] == 0 and caught_up["lag_seconds"] == 0
    stop_app(app)


def test_a_rebuild_from_zero_yields_identical_rows(store: Store, app: Flask,
                                                   client: FlaskClient) -> None:
    headers = project_headers()
    *_, cluster = spark_cluster(client, headers)
    client.patch(f"/v2/clusters/{cluster}", headers=headers, json={"description": "x"})
    client.delete(f"/v2/clusters/{cluster}", headers=headers)
    settle = store.describe().get("feed_settle_seconds", 0) or 0
    time.sleep(float(settle) + 0.2)
    stop_app(app)  # its projector would move the live rows on while they are compared
    for projection_type in RESOURCE_PROJECTIONS.values():
        projection = projection_type()
        update(store, projection)
        assert list(verify(store, projection)) == []


def test_a_projects_rows_and_the_public_ones_are_indexed_apart(store: Store) -> None:
    app = app_for(ApiConfig(auth="noauth", run_projector=False), store=store)
    client = app.test_client()
    owner, other = project_headers(), project_headers()

    def made(headers: dict[str, str], **extra: Any) -> str:
        identifier: str = client.post("/v2/data-sources", headers=headers, json={
            "name": unique("ds"), "type": "swift", "url": "swift://c/o", **extra,
        }).get_json()["data_source"]["id"]
        return identifier

    private, public, theirs = made(owner), made(owner, is_public=True), made(other)
    client.patch(f"/v2/data-sources/{public}", headers=owner, json={"is_public": False})
    client.patch(f"/v2/data-sources/{private}", headers=owner, json={"is_public": True})
    gone = made(owner)
    client.delete(f"/v2/data-sources/{gone}", headers=owner)
    settle = store.describe().get("feed_settle_seconds", 0) or 0
    time.sleep(float(settle) + 0.2)
    projection = DataSources()
    generation, _ = update(store, projection)
    assert projection.index is not None

    def indexed(prefix: str) -> set[str]:
        assert projection.index is not None
        return {key.removeprefix(prefix)
                for key, _ in store.scan_rows(projection.index, generation, prefix=prefix)}

    assert indexed(owned_by(owner["X-Project-Id"])) == {private, public}
    assert indexed(owned_by(other["X-Project-Id"])) == {theirs}
    assert private in indexed(PUBLIC) and not {public, theirs, gone} & indexed(PUBLIC)
    listed = client.get("/v2/data-sources", headers=other).get_json()["data_sources"]
    assert {private, theirs} <= {d["id"] for d in listed}
    assert not {public, gone} & {d["id"] for d in listed}
    stop_app(app)


def test_a_read_model_from_before_the_index_is_rebuilt_not_updated(store: Store) -> None:
    projection = DataSources()
    resources.create(store, Kind.DATA_SOURCE, SYSTEM,
                     {"name": unique("ds"), "type": "swift", "url": "swift://c/o"})
    old, _ = update(store, projection)
    assert projection.index is not None
    store.drop_rows(projection.index, old)  # as an older version left it: no index at all

    new, _ = update(store, projection)

    assert new != old and store.live_generation(projection.name) == new
    assert store.get_row(projection.index, new, INDEX_BUILT) is not None
    assert list(store.scan_rows(projection.name, old)) == []


def test_lists_page_with_markers_and_links(client: FlaskClient) -> None:
    headers = project_headers()
    tag = unique("page")  # public resources of other tests are listed too: filter by name
    names = sorted(f"{tag}-{i}" for i in range(5))
    for name in names:
        client.post("/v2/job-binaries", headers=headers, json={"name": name,
                                                                "url": "swift://c/o.jar"})

    def listed(query: str) -> dict[str, Any]:
        return page(client, headers, f"job-binaries?name={tag}&{query}")

    first = listed("limit=2&sort_by=name")
    assert [b["name"] for b in first["binaries"]] == names[:2]
    assert first["markers"]["next"] == first["binaries"][-1]["id"]
    assert first["links"][0]["rel"] == "next"
    second = listed(f"limit=2&sort_by=name&marker={first['markers']['next']}")
    assert [b["name"] for b in second["binaries"]] == names[2:4]
    descending = listed("sort_by=-name")
    assert [b["name"] for b in descending["binaries"]] == names[::-1]
    assert client.get("/v2/job-binaries?limit=0", headers=headers).status_code == 400
    assert client.get("/v2/job-binaries?sort_by=color", headers=headers).status_code == 400


def test_pages_in_id_order_read_only_as_far_as_they_show(client: FlaskClient) -> None:
    headers = project_headers()
    tag = unique("ids")
    made = [client.post("/v2/data-sources", headers=headers, json={
        "name": f"{tag}-{i}", "type": "swift", "url": "swift://c/o"}).get_json()[
        "data_source"]["id"] for i in range(5)]
    ids = sorted(made)

    def listed(query: str) -> dict[str, Any]:
        return page(client, headers, f"data-sources?name={tag}&{query}")

    first = listed("limit=2")
    assert [d["id"] for d in first["data_sources"]] == ids[:2]
    assert first["markers"] == {"prev": None, "next": ids[1]}
    third = listed(f"limit=2&marker={ids[3]}")
    assert [d["id"] for d in third["data_sources"]] == ids[4:]
    assert third["markers"] == {"prev": ids[1], "next": None}
    assert listed(f"limit=2&marker={ids[1]}")["markers"] == {"prev": None, "next": ids[3]}
