"""The API's read models in memory, on both stores: a GET answered from memory asks the
store nothing; a write is read back at once by the process that took it, and by any other
process the client names the write to (``X-Sahara-Es-Written``) or that sees the caller
arrive from elsewhere; a process that knows it is behind reads the store."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any, cast

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from sahara_es.api.app import ApiConfig, event_sink, stop_app
from sahara_es.api.compose import app_for
from sahara_es.api.reads import WRITTEN_HEADER
from sahara_es.api.service import Service
from sahara_es.commands import resources
from sahara_es.commands.caller import Caller
from sahara_es.events.resources import Kind
from sahara_es.projections import RESOURCE_PROJECTIONS, update
from sahara_es.projections.memory import MemoryReads
from sahara_es.projections.resources import Clusters
from sahara_es.store import Store
from tests.engines import wait_until
from tests.factories import CountingStore


def unique(prefix: str = "r") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def api(store: Store | CountingStore, **settings: Any) -> Flask:
    config = ApiConfig(auth="noauth", run_projector=False, **{"reads": "memory", **settings})
    return app_for(config, store=cast(Store, store))


@pytest.fixture
def apps() -> Iterator[Callable[..., Flask]]:
    made: list[Flask] = []

    def make(store: Store | CountingStore, **settings: Any) -> Flask:
        made.append(api(store, **settings))
        return made[-1]

    yield make
    for app in made:
        stop_app(app)


def create_data_source(client: FlaskClient, project: str) -> tuple[str, str]:
    """(its id, the answer's ``X-Sahara-Es-Written``)."""
    answer = client.post("/v2/data-sources", headers={"X-Project-Id": project}, json={
        "name": unique("ds"), "type": "swift", "url": "swift://c/o"})
    assert answer.status_code == 202, answer.json
    return body(answer)["data_source"]["id"], answer.headers[WRITTEN_HEADER]


def listed(client: FlaskClient, project: str, **headers: str) -> list[str]:
    answer = client.get("/v2/data-sources?limit=1000",
                        headers={"X-Project-Id": project, **headers})
    assert answer.status_code == 200
    # the project's own: other tests' public data sources are listed too
    return [d["id"] for d in body(answer)["data_sources"] if d["project_id"] == project]


def body(answer: TestResponse) -> dict[str, Any]:
    found: dict[str, Any] = answer.get_json()
    return found


def test_a_get_answered_from_memory_asks_the_store_nothing(
        store: Store, apps: Callable[..., Flask]) -> None:
    counting = CountingStore(store)
    client = apps(counting, affinity_window=600.0).test_client()
    project = unique("p")
    ds_id, _ = create_data_source(client, project)
    before = counting.calls_here()
    show = client.get(f"/v2/data-sources/{ds_id}", headers={"X-Project-Id": project})
    ids = listed(client, project)
    assert show.status_code == 200 and body(show)["data_source"]["id"] == ds_id
    assert ids == [ds_id]
    assert counting.calls_here() == before, "a GET read the store"


def test_the_process_that_took_a_write_reads_it_back_at_once(
        store: Store, apps: Callable[..., Flask]) -> None:
    client = apps(store, read_poll=3600.0).test_client()  # the tail never gets there first
    project = unique("p")
    ds_id, written = create_data_source(client, project)
    assert written.startswith(f"{Kind.DATA_SOURCE.stream(ds_id)}@")
    assert client.get(f"/v2/data-sources/{ds_id}",
                      headers={"X-Project-Id": project}).status_code == 200
    assert listed(client, project) == [ds_id]
    assert client.delete(f"/v2/data-sources/{ds_id}",
                         headers={"X-Project-Id": project}).status_code == 204
    assert listed(client, project) == []


def test_another_process_reads_a_write_it_is_named(
        store: Store, apps: Callable[..., Flask]) -> None:
    writer = apps(store).test_client()
    # this reader's tail never reads the feed again, and it has seen the caller just now
    reader = apps(store, read_poll=3600.0, affinity_window=600.0).test_client()
    project = unique("p")
    assert listed(reader, project) == []
    ds_id, written = create_data_source(writer, project)
    assert listed(reader, project, **{WRITTEN_HEADER: written}) == [ds_id]
    show = reader.get(f"/v2/data-sources/{ds_id}", headers={"X-Project-Id": project})
    assert show.status_code == 200


def test_a_caller_arriving_from_another_process_reads_what_it_wrote_there(
        store: Store, apps: Callable[..., Flask]) -> None:
    writer = apps(store).test_client()
    reader = apps(store, read_poll=3600.0).test_client()
    project = unique("p")
    ds_id, _ = create_data_source(writer, project)
    # the reader never answered this caller: it reads the feed to its end, and the store
    show = reader.get(f"/v2/data-sources/{ds_id}", headers={"X-Project-Id": project})
    assert show.status_code == 200 and body(show)["data_source"]["id"] == ds_id


def test_a_process_whose_tail_is_behind_reads_the_store(
        store: Store, apps: Callable[..., Flask]) -> None:
    counting = CountingStore(store)
    app = apps(counting, affinity_window=600.0, max_read_lag=0.5)
    client = app.test_client()
    service: Service = app.extensions["sahara_es"]
    assert service.tail is not None
    project = unique("p")
    client.get("/v2/data-sources", headers={"X-Project-Id": project})
    service.tail.stop()
    ds_id = resources.create(store, Kind.DATA_SOURCE, Caller(project_id=project),
                             {"name": unique("ds"), "type": "swift", "url": "swift://c/o"})["id"]
    wait_until(lambda: service.tail is not None and service.tail.lag_seconds() > 0.5,
               timeout=10)
    before = counting.calls_here()
    show = client.get(f"/v2/data-sources/{ds_id}", headers={"X-Project-Id": project})
    assert show.status_code == 200
    assert counting.calls_here() != before
    assert body(client.get("/healthz"))["reads"]["from"] == "store"


def test_pushed_events_are_read_at_once_and_once_only(store: Store) -> None:
    memory = MemoryReads(store, [p() for p in RESOURCE_PROJECTIONS.values()])
    project = unique("p")
    doc = resources.create(store, Kind.DATA_SOURCE, Caller(project_id=project),
                           {"name": unique("ds"), "type": "swift", "url": "swift://c/o"})
    events = list(store.read(Kind.DATA_SOURCE.stream(doc["id"])))
    rows = memory.rows[Kind.DATA_SOURCE]
    assert [d["id"] for d in rows.scan(project)] == []
    memory.push(events)
    shown = rows.get(doc["id"])
    assert shown is not None and shown["name"] == doc["name"]
    memory.push(events)
    memory.push(list(reversed(events)))
    assert [d["id"] for d in rows.scan(project)] == [doc["id"]]
    assert rows.get(doc["id"]) is shown, "a second delivery changed the row"


def test_an_event_pushed_before_the_earlier_ones_of_its_stream_brings_them(
        store: Store) -> None:
    memory = MemoryReads(store, [p() for p in RESOURCE_PROJECTIONS.values()])
    caller = Caller(project_id=unique("p"))
    doc = resources.create(store, Kind.DATA_SOURCE, caller,
                           {"name": unique("ds"), "type": "swift", "url": "swift://c/o"})
    resources.update(store, Kind.DATA_SOURCE, doc["id"], caller, {"description": "later"})
    last = list(store.read(Kind.DATA_SOURCE.stream(doc["id"])))[-1]
    memory.push([last])
    shown = memory.rows[Kind.DATA_SOURCE].get(doc["id"])
    assert shown is not None and shown["description"] == "later"


def test_the_app_gives_the_sink_events_are_pushed_to(
        store: Store, apps: Callable[..., Flask]) -> None:
    app = apps(store, read_poll=3600.0, affinity_window=600.0)
    client = app.test_client()
    sink = event_sink(app)
    assert sink is not None
    caller = Caller(project_id=unique("p"))
    assert listed(client, caller.project_id) == []
    doc = resources.create(store, Kind.DATA_SOURCE, caller,
                           {"name": unique("ds"), "type": "swift", "url": "swift://c/o"})
    sink.push(list(store.read(Kind.DATA_SOURCE.stream(doc["id"]))))
    assert listed(client, caller.project_id) == [doc["id"]]
    assert event_sink(apps(store, reads="store")) is None


def spark_cluster(client: FlaskClient, headers: dict[str, str]) -> str:
    """A Spark cluster's id, made of a master and a worker node group template."""
    version = body(client.get("/v2/plugins/spark"))["plugin"]["versions"][0]
    groups = []
    for process, count in (("master", 1), ("worker", 2)):
        made = client.post("/v2/node-group-templates", headers=headers, json={
            "name": unique(process), "plugin_name": "spark", "plugin_version": version,
            "flavor_id": "local.small", "node_processes": [process]})
        assert made.status_code == 202, made.json
        groups.append({"name": process, "count": count,
                       "node_group_template_id": body(made)["node_group_template"]["id"]})
    cluster = client.post("/v2/clusters", headers=headers, json={
        "name": unique("c"), "plugin_name": "spark", "plugin_version": version,
        "node_groups": groups})
    assert cluster.status_code == 202, cluster.json
    found: str = body(cluster)["cluster"]["id"]
    return found


def test_a_cluster_shown_from_memory_asks_the_store_nothing_even_without_its_key(
        store: Store, apps: Callable[..., Flask]) -> None:
    writer = apps(store, plugins=["spark"]).test_client()
    headers = {"X-Project-Id": unique("p")}
    cluster_id = spark_cluster(writer, headers)  # recorded only: no key is ever made
    update(store, Clusters())  # the stored read model a starting process loads
    counting = CountingStore(store)
    reader = apps(counting, plugins=["spark"], affinity_window=600.0).test_client()
    assert reader.get("/v2/clusters", headers=headers).status_code == 200
    before = counting.calls_here()
    shown = reader.get(f"/v2/clusters/{cluster_id}", headers=headers)
    listed_clusters = reader.get("/v2/clusters", headers=headers)
    assert shown.status_code == 200 and listed_clusters.status_code == 200
    assert body(shown)["cluster"]["management_public_key"] is None
    assert counting.calls_here() == before, "a GET read the store"
