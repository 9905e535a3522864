"""Projects are isolated over HTTP: another project can neither read, list, change nor delete
a private resource, may see but not change a public one, and an admin sees everything.

The endpoints are one table (``ENDPOINTS``): a new endpoint is one more row, and every
isolation rule below is then checked against it, on every store. Requests go with plain
``requests`` to a real server in token mode, so what is checked is what a client gets.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from sahara_es.api.auth import TOKEN_CACHE_SECONDS
from sahara_es.commands import resources, tokens
from sahara_es.commands.caller import SYSTEM
from sahara_es.events import resources as ev
from sahara_es.events.resources import Kind
from sahara_es.store import Store
from tests.apiserver import RunningApi, running_api

PLUGIN = "spark"
FLAVOR = "local.small"
VERSION_HEADER = "OpenStack-API-Version"


@dataclass(frozen=True)
class Endpoint:
    """One collection of the API and what may be asked of one of its resources."""

    collection: str
    envelope: str
    """The list's key (Sahara lists job binaries as ``binaries``)."""
    changes: tuple[tuple[str, str, dict[str, Any]], ...]
    """``(method, subpath, body)`` of each request that changes a resource."""
    reads: tuple[str, ...] = ("",)
    """Subpaths that read a resource: the resource itself, exports, data."""

    def __str__(self) -> str:
        return self.collection


def edit(body: dict[str, Any]) -> tuple[tuple[str, str, dict[str, Any]], ...]:
    return (("PATCH", "", body), ("PUT", "", body))


ENDPOINTS = [
    Endpoint("node-group-templates", "node_group_templates", edit({"description": "mine"}),
             reads=("", "/export")),
    Endpoint("cluster-templates", "cluster_templates", edit({"description": "mine"}),
             reads=("", "/export")),
    Endpoint("clusters", "clusters", (
        ("PUT", "", {"resize_node_groups": [{"name": "worker", "count": 3}]}),
        ("PATCH", "", {"description": "mine"}))),
    Endpoint("data-sources", "data_sources", edit({"description": "mine"})),
    Endpoint("job-binaries", "binaries", edit({"description": "mine"}),
             reads=("", "/data")),
    Endpoint("job-templates", "job_templates", edit({"description": "mine"})),
    Endpoint("jobs", "jobs", (("PATCH", "", {"is_public": True}),
                              ("PATCH", "", {"info": {"status": "cancel"}}))),
]


@dataclass
class World:
    """A running API; projects A and B and an admin; A's resources, private and public."""

    api: RunningApi
    project_a: str
    project_b: str
    token_a: str
    token_b: str
    token_admin: str
    private: dict[str, str] = field(default_factory=dict)
    """collection → id of A's private resource."""
    public: dict[str, str] = field(default_factory=dict)
    """collection → id of A's ``is_public`` resource."""

    def call(self, method: str, path: str, token: str | None, *,
             body: dict[str, Any] | None = None, root: str | None = None,
             headers: dict[str, str] | None = None) -> requests.Response:
        sent = {**({"X-Auth-Token": token} if token else {}), **(headers or {})}
        return requests.request(method, f"{root or self.api.url}{path}", json=body,
                                headers=sent, timeout=30)

    def ids_listed(self, endpoint: Endpoint, token: str) -> set[str]:
        answer = self.call("GET", f"/{endpoint.collection}", token)
        assert answer.status_code == 200, answer.text
        return {item["id"] for item in answer.json()[endpoint.envelope]}

    def project_root(self, project: str) -> str:
        return f"{self.api.url}/{project}"


def created(world: World, collection: str, body: dict[str, Any]) -> dict[str, Any]:
    answer = world.call("POST", f"/{collection}", world.token_a, body=body)
    assert answer.status_code == 202, answer.text
    (resource,) = answer.json().values()
    return dict(resource)


def make_active(store: Store, cluster_id: str) -> None:
    """What the provisioning layer will record once the cluster is up; it is not attached
    to this server, so the test appends the status change as the service itself would
    (jobs run only on an Active cluster, and scaling is asked only of one)."""
    aggregate = resources.load(store, Kind.CLUSTER, cluster_id)
    resources.append(store, aggregate, [ev.ClusterStatusChanged("Active")], SYSTEM)


def furnish(world: World, binary_root: Path) -> None:
    """Give project A one private and one public resource of every kind."""
    version = world.call("GET", f"/plugins/{PLUGIN}", world.token_a).json()[
        "plugin"]["versions"][0]
    plugin = {"plugin_name": PLUGIN, "plugin_version": version}
    for visibility, is_public in (("private", False), ("public", True)):
        ids = world.private if not is_public else world.public
        shared = {"is_public": is_public}
        master = created(world, "node-group-templates", {
            **plugin, **shared, "name": f"master-{visibility}", "flavor_id": FLAVOR,
            "node_processes": ["master"]})
        worker = created(world, "node-group-templates", {
            **plugin, **shared, "name": f"worker-{visibility}", "flavor_id": FLAVOR,
            "node_processes": ["worker"]})
        ids["node-group-templates"] = master["id"]
        template = created(world, "cluster-templates", {
            **plugin, **shared, "name": f"spark-{visibility}", "node_groups": [
                {"name": "master", "count": 1, "node_group_template_id": master["id"]},
                {"name": "worker", "count": 2, "node_group_template_id": worker["id"]}]})
        ids["cluster-templates"] = template["id"]
        cluster = created(world, "clusters", {
            **plugin, **shared, "name": f"cluster-{visibility}",
            "cluster_template_id": template["id"]})
        make_active(world.api.store, cluster["id"])
        ids["clusters"] = cluster["id"]
        source = created(world, "data-sources", {
            **shared, "name": f"input-{visibility}", "type": "swift",
            "url": "swift://c/in"})
        ids["data-sources"] = source["id"]
        main = binary_root / world.project_a / f"main-{visibility}.py"  # A's own folder
        main.parent.mkdir(exist_ok=True)
        main.write_text("print('hello')\n")
        binary = created(world, "job-binaries", {
            **shared, "name": f"main-{visibility}", "url": f"file://{main}"})
        ids["job-binaries"] = binary["id"]
        job_template = created(world, "job-templates", {
            **shared, "name": f"job-{visibility}", "type": "Spark", "mains": [binary["id"]]})
        ids["job-templates"] = job_template["id"]
        job = created(world, "jobs", {
            **shared, "cluster_id": cluster["id"], "job_template_id": job_template["id"],
            "input_id": source["id"]})
        ids["jobs"] = job["id"]


class Worlds:
    """One world per store for the module (furnishing one is most of the work); their
    servers stop with the module."""

    def __init__(self, stack: ExitStack, folders: pytest.TempPathFactory) -> None:
        self.stack = stack
        self.folders = folders
        self.by_store: dict[int, World] = {}

    def of(self, store: Store) -> World:
        if id(store) not in self.by_store:
            api = self.stack.enter_context(running_api(store))
            binary_root = self.folders.mktemp("job-binaries")
            api.app.config["JOB_BINARY_ROOT"] = str(binary_root)
            suffix = uuid.uuid4().hex[:8]
            a, b = f"project-a-{suffix}", f"project-b-{suffix}"
            built = World(api, a, b, api.token(a), api.token(b),
                          api.token(f"operators-{suffix}", "admin"))
            furnish(built, binary_root)
            self.by_store[id(store)] = built
        return self.by_store[id(store)]


@pytest.fixture(scope="module")
def worlds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worlds]:
    with ExitStack() as stack:
        yield Worlds(stack, tmp_path_factory)


@pytest.fixture
def world(store: Store, worlds: Worlds) -> World:
    return worlds.of(store)


# -- private resources ----------------------------------------------------------------------

@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=str)
def test_the_owner_reads_and_lists_its_private_resource(world: World,
                                                        endpoint: Endpoint) -> None:
    resource = world.private[endpoint.collection]
    for read in endpoint.reads:
        answer = world.call("GET", f"/{endpoint.collection}/{resource}{read}", world.token_a)
        assert answer.status_code == 200, (read, answer.text)
    assert resource in world.ids_listed(endpoint, world.token_a)


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=str)
def test_another_project_cannot_read_a_private_resource(world: World,
                                                        endpoint: Endpoint) -> None:
    resource = world.private[endpoint.collection]
    for read in endpoint.reads:
        answer = world.call("GET", f"/{endpoint.collection}/{resource}{read}", world.token_b)
        assert answer.status_code == 404, (read, answer.text)
        assert answer.json()["error_name"] == "NOT_FOUND"


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=str)
def test_another_project_does_not_list_a_private_resource(world: World,
                                                          endpoint: Endpoint) -> None:
    assert world.private[endpoint.collection] not in world.ids_listed(endpoint, world.token_b)


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=str)
def test_another_project_cannot_change_a_private_resource(world: World,
                                                          endpoint: Endpoint) -> None:
    resource = world.private[endpoint.collection]
    for method, subpath, body in endpoint.changes:
        answer = world.call(method, f"/{endpoint.collection}/{resource}{subpath}",
                            world.token_b, body=body)
        assert answer.status_code == 404, (method, body, answer.text)


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=str)
def test_another_project_cannot_delete_a_private_resource(world: World,
                                                          endpoint: Endpoint) -> None:
    resource = world.private[endpoint.collection]
    answer = world.call("DELETE", f"/{endpoint.collection}/{resource}", world.token_b)
    assert answer.status_code == 404, answer.text
    still = world.call("GET", f"/{endpoint.collection}/{resource}", world.token_a)
    assert still.status_code == 200


# -- public resources -----------------------------------------------------------------------

@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=str)
def test_another_project_reads_and_lists_a_public_resource(world: World,
                                                           endpoint: Endpoint) -> None:
    resource = world.public[endpoint.collection]
    answer = world.call("GET", f"/{endpoint.collection}/{resource}", world.token_b)
    assert answer.status_code == 200, answer.text
    assert resource in world.ids_listed(endpoint, world.token_b)


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=str)
def test_another_project_cannot_change_or_delete_a_public_resource(
        world: World, endpoint: Endpoint) -> None:
    resource = world.public[endpoint.collection]
    for method, subpath, body in [*endpoint.changes, ("DELETE", "", None)]:
        answer = world.call(method, f"/{endpoint.collection}/{resource}{subpath}",
                            world.token_b, body=body)
        assert answer.status_code in (403, 404), (method, body, answer.text)
    still = world.call("GET", f"/{endpoint.collection}/{resource}", world.token_a)
    assert still.status_code == 200
    assert still.json()[next(iter(still.json()))].get("description") != "mine"


# -- admin and the project in the URL -------------------------------------------------------

@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=str)
def test_an_admin_reads_and_lists_every_project_resource(world: World,
                                                         endpoint: Endpoint) -> None:
    resource = world.private[endpoint.collection]
    answer = world.call("GET", f"/{endpoint.collection}/{resource}", world.token_admin)
    assert answer.status_code == 200, answer.text
    listed = world.ids_listed(endpoint, world.token_admin)
    assert {resource, world.public[endpoint.collection]} <= listed


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=str)
def test_the_project_in_the_url_must_be_the_callers_own(world: World,
                                                        endpoint: Endpoint) -> None:
    resource = world.private[endpoint.collection]
    own = world.project_root(world.project_a)
    assert world.call("GET", f"/{endpoint.collection}/{resource}", world.token_a,
                      root=own).status_code == 200
    assert resource in {item["id"] for item in world.call(
        "GET", f"/{endpoint.collection}", world.token_a, root=own).json()[endpoint.envelope]}
    other = world.call("GET", f"/{endpoint.collection}/{resource}", world.token_b, root=own)
    assert other.status_code == 403, other.text
    assert other.json()["error_name"] == "FORBIDDEN"
    in_own_project = world.call("GET", f"/{endpoint.collection}/{resource}", world.token_b,
                                root=world.project_root(world.project_b))
    assert in_own_project.status_code == 404


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=str)
def test_a_request_without_a_token_is_401(world: World, endpoint: Endpoint) -> None:
    for path in (f"/{endpoint.collection}",
                 f"/{endpoint.collection}/{world.public[endpoint.collection]}"):
        answer = world.call("GET", path, None)
        assert answer.status_code == 401, answer.text
        assert answer.json()["error_name"] == "UNAUTHORIZED"
        assert "WWW-Authenticate" in answer.headers


def test_a_revoked_token_is_refused_within_the_cache_window(world: World) -> None:
    token = world.api.token(world.project_a)
    assert world.call("GET", "/clusters", token).status_code == 200
    tokens.revoke(world.api.store, token, reason="test")
    deadline = time.monotonic() + TOKEN_CACHE_SECONDS + 2
    while (status := world.call("GET", "/clusters", token).status_code) == 200:
        assert time.monotonic() < deadline, "a revoked token still works past the cache"
        time.sleep(0.25)
    assert status == 401
    with running_api(world.api.store) as fresh:
        answer = requests.get(f"{fresh.url}/clusters", headers={"X-Auth-Token": token},
                              timeout=30)
        assert answer.status_code == 401


# -- the API version header and the error document ------------------------------------------

def test_no_version_header_is_answered_as_2_0_and_varies_on_it(world: World) -> None:
    answer = world.call("GET", "/plugins", world.token_a)
    assert answer.status_code == 200
    assert answer.headers[VERSION_HEADER] == "data-processing 2.0"
    assert VERSION_HEADER.lower() in answer.headers["Vary"].lower()


def test_version_2_0_is_served(world: World) -> None:
    answer = world.call("GET", "/plugins", world.token_a,
                        headers={VERSION_HEADER: "data-processing 2.0"})
    assert answer.status_code == 200
    assert answer.headers[VERSION_HEADER] == "data-processing 2.0"


def test_an_unsupported_version_is_406(world: World) -> None:
    answer = world.call("GET", "/plugins", world.token_a,
                        headers={VERSION_HEADER: "data-processing 3.0"})
    assert answer.status_code == 406
    assert answer.json()["error_name"] == "NOT_ACCEPTABLE"


def test_a_malformed_version_is_400(world: World) -> None:
    answer = world.call("GET", "/plugins", world.token_a,
                        headers={VERSION_HEADER: "data-processing abc"})
    assert answer.status_code == 400
    assert answer.json()["error_name"] == "BAD_REQUEST"


def test_an_error_carries_both_saharas_fields_and_the_api_sig_document(world: World) -> None:
    answer = world.call("GET", f"/clusters/{world.private['clusters']}", world.token_b)
    assert answer.status_code == 404
    error = answer.json()
    assert error["error_code"] == 404
    assert error["error_name"] == "NOT_FOUND"
    assert error["error_message"]
    (item,) = error["errors"]
    assert item["request_id"] == answer.headers["X-Openstack-Request-Id"]
    assert item["request_id"].startswith("req-")
    assert item["status"] == 404
    assert item["code"] == "sahara-es.not-found"
    assert item["title"] and item["detail"] == error["error_message"]
