"""Hostile input gets a clear 4xx, never a 500, and leaves nothing half-created (issue 12).

Each test is one reported reproduction, on every store: a ``count`` create refused part-way,
deeply nested JSON, huge bodies and configs, crafted file URLs and NUL bytes, node group names
that could never provision, and another project's private ids in a refusal. Every refusal is
checked to be an API-SIG error document (``errors: [{code, status, title, detail...}]``).
"""

from __future__ import annotations

import json
import os
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from sahara_es.api.app import ApiConfig, stop_app
from sahara_es.api.compose import app_for
from sahara_es.commands import resources
from sahara_es.commands.caller import Caller
from sahara_es.events.resources import Kind
from sahara_es.infra.quotas import QuotaLimits, Quotas
from sahara_es.provisioning.services import QuotaGate
from sahara_es.store import Store
from tests.apiserver import running_api

FAKE = {"plugin_name": "fake", "plugin_version": "0.1"}
MANAGER = {"name": "manager", "count": 1, "flavor_id": "local.small",
           "node_processes": ["namenode"]}


def unique(prefix: str = "r") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def project() -> dict[str, str]:
    return {"X-Project-Id": unique("p")}


@pytest.fixture
def quotas(store: Store) -> Quotas:
    return Quotas(store)


@pytest.fixture
def app(store: Store, quotas: Quotas, tmp_path: Path) -> Iterator[Flask]:
    app = app_for(ApiConfig(auth="noauth", plugins=["spark", "fake"],
                            data_dir=str(tmp_path / "state")),
                  store=store, quota=QuotaGate(quotas))
    yield app
    stop_app(app)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def refused(response: TestResponse, status: int) -> str:
    """The refusal's detail, once its status and API-SIG shape are checked."""
    assert response.status_code == status, (response.status_code, response.get_data()[:500])
    body = response.get_json()
    assert body["error_code"] == status
    (error,) = body["errors"]
    assert error["status"] == status
    assert error["code"].startswith("sahara-es.")
    assert error["title"] and error["detail"] == body["error_message"]
    assert set(error) == {"request_id", "code", "status", "title", "detail"}
    detail: str = error["detail"]
    return detail


def names_listed(client: FlaskClient, headers: dict[str, str], collection: str,
                 envelope: str) -> list[str]:
    """The names of the project's own resources (other tests' public ones are listed too)."""
    body = client.get(f"/v2/{collection}", headers=headers).get_json()
    return [item["name"] for item in body[envelope]
            if item["project_id"] == headers["X-Project-Id"]]


# -- 3. a count create is all or nothing -------------------------------------------------------

def test_a_count_create_over_quota_creates_nothing_and_holds_no_quota(
        client: FlaskClient, quotas: Quotas) -> None:
    headers = project()
    quotas.set_limits(headers["X-Project-Id"], QuotaLimits(instances=1, cores=40, ram_mb=81920))
    name = unique("c")
    detail = refused(client.post("/v2/clusters", headers=headers, json={
        "name": name, **FAKE, "count": 2, "node_groups": [MANAGER]}), 403)
    assert "none was created" in detail
    assert names_listed(client, headers, "clusters", "clusters") == []
    assert all(u.used == 0 for u in quotas.usage(headers["X-Project-Id"]).values())
    # the names and the quota are free: one cluster of that name fits
    again = client.post("/v2/clusters", headers=headers, json={
        "name": f"{name}-1", **FAKE, "node_groups": [MANAGER]})
    assert again.status_code == 202, again.get_json()


def test_a_count_create_whose_later_name_is_taken_leaves_no_earlier_cluster(
        client: FlaskClient, quotas: Quotas) -> None:
    headers = project()
    name = unique("c")
    taken = client.post("/v2/clusters", headers=headers, json={
        "name": f"{name}-2", **FAKE, "node_groups": [MANAGER]})
    assert taken.status_code == 202, taken.get_json()
    refused(client.post("/v2/clusters", headers=headers, json={
        "name": name, **FAKE, "count": 2, "node_groups": [MANAGER]}), 409)
    assert names_listed(client, headers, "clusters", "clusters") == [f"{name}-2"]
    assert quotas.usage(headers["X-Project-Id"])["instances"].used == 1
    again = client.post("/v2/clusters", headers=headers, json={
        "name": f"{name}-1", **FAKE, "node_groups": [MANAGER]})
    assert again.status_code == 202, again.get_json()


# -- 6. deep nesting ---------------------------------------------------------------------------

@pytest.mark.parametrize("depth", [33, 1000, 100_000])
def test_deeply_nested_json_is_a_400(client: FlaskClient, depth: int) -> None:
    for text in ("[" * depth + "]" * depth, "[" * depth,
                 '{"name": "x", "node_configs": ' + '{"a": ' * depth + "1" + "}" * depth + "}"):
        detail = refused(client.post("/v2/data-sources", headers=project(), data=text,
                                     content_type="application/json"), 400)
        assert "deeper than 32 levels" in detail


def test_brackets_inside_strings_do_not_count_as_nesting(client: FlaskClient) -> None:
    response = client.post("/v2/data-sources", headers=project(), json={
        "name": unique("ds"), "type": "swift", "url": "swift://c/o",
        "description": "[{" * 300})
    assert response.status_code == 202, response.get_json()


# -- 7. sizes ----------------------------------------------------------------------------------

def test_a_body_over_the_limit_is_a_413(client: FlaskClient) -> None:
    huge = {"name": unique("ngt"), **FAKE, "flavor_id": "local.small",
            "node_processes": ["namenode"], "node_configs": {"HDFS": {"x": "y" * 10_000_000}}}
    detail = refused(client.post("/v2/node-group-templates", headers=project(), json=huge), 413)
    assert str(1024 * 1024) in detail


def test_over_http_a_huge_body_is_a_413_whether_its_length_is_given_or_chunked(
        store: Store) -> None:
    def chunks(count: int) -> Iterator[bytes]:
        yield b'{"name": "ngt", "plugin_name": "fake", "plugin_version": "0.1",'
        yield b' "node_configs": {"HDFS": {"x": "'
        for _ in range(count):
            yield b"y" * 65536
        yield b'"}}}'

    with running_api(store, auth="noauth") as api:
        url, headers = f"{api.url}/node-group-templates", {
            **project(), "Content-Type": "application/json"}
        sized = requests.post(url, data=b"".join(chunks(160)), headers=headers, timeout=60)
        chunked = requests.post(url, data=chunks(160), headers=headers, timeout=60)
    for answer in (sized, chunked):
        assert answer.status_code == 413, answer.text[:300]
        assert answer.json()["errors"][0]["code"] == "sahara-es.body-too-large"


def test_the_body_limit_is_configurable(store: Store, tmp_path: Path) -> None:
    app = app_for(ApiConfig(auth="noauth", max_body_bytes=2000, data_dir=str(tmp_path)),
                  store=store)
    try:
        client = app.test_client()
        refused(client.post("/v2/data-sources", headers=project(), json={
            "name": unique("ds"), "type": "swift", "url": "swift://c/o",
            "description": "x" * 1000, "credentials": {"k": "v" * 1500}}), 413)
    finally:
        stop_app(app)


@pytest.mark.parametrize(("path", "body"), [
    ("/v2/node-group-templates", {**FAKE, "flavor_id": "local.small",
                                  "node_processes": ["namenode"],
                                  "node_configs": {"HDFS": {"x": "y" * 70_000}}}),
    ("/v2/cluster-templates", {**FAKE, "cluster_configs": {"general": {"x": "y" * 70_000}}}),
    ("/v2/clusters", {**FAKE, "node_groups": [
        {**MANAGER, "node_configs": {"HDFS": {"x": "y" * 70_000}}}]}),
])
def test_a_config_over_its_limit_is_a_400(client: FlaskClient, path: str,
                                          body: dict[str, Any]) -> None:
    detail = refused(client.post(path, headers=project(), json={"name": unique("n"), **body}),
                     400)
    assert "configs" in detail and str(64 * 1024) in detail


def test_job_configs_over_their_limit_are_a_400(client: FlaskClient) -> None:
    detail = refused(client.post("/v2/jobs", headers=project(), json={
        "cluster_id": str(uuid.uuid4()), "job_template_id": str(uuid.uuid4()),
        "job_configs": {"configs": {"x": "y" * 70_000}}}), 400)
    assert "job_configs" in detail


# -- 8. crafted file URLs and NUL bytes --------------------------------------------------------

@pytest.mark.parametrize("binary_url", ["file:///tmp/a\u0000b", f"file:///tmp/{'a' * 300}",
                                        f"swift://container/{'o' * 256}"])
def test_a_job_binary_url_no_file_can_have_is_a_400(client: FlaskClient,
                                                    binary_url: str) -> None:
    refused(client.post("/v2/job-binaries", headers=project(), json={
        "name": unique("jb"), "url": binary_url}), 400)


@pytest.mark.parametrize("binary_url", ["file:///tmp/a\u0000b", f"file:///tmp/{'a' * 300}",
                                        "file:///nonexistent/x.jar"])
def test_reading_a_binary_that_cannot_be_read_is_a_404_without_paths(
        client: FlaskClient, store: Store, app: Flask, binary_url: str) -> None:
    """Binaries recorded before the checks existed, or whose file is gone."""
    headers = project()
    doc = resources.create(store, Kind.JOB_BINARY, Caller(project_id=headers["X-Project-Id"]),
                           {"name": unique("jb"), "url": binary_url})
    app.extensions["sahara_es"].written(doc)
    detail = refused(client.get(f"/v2/job-binaries/{doc['id']}/data", headers=headers), 404)
    assert "/tmp" not in detail and "/nonexistent" not in detail
    assert app.config["JOB_BINARY_ROOT"] not in detail
    assert "data is missing" in detail


@pytest.mark.parametrize(("path", "body"), [
    ("/v2/data-sources", {"name": "a\u0000b", "type": "swift", "url": "swift://c/o"}),
    ("/v2/data-sources", {"name": "ds", "type": "swift", "url": "swift://c/o",
                          "description": "x\u0000"}),
    ("/v2/data-sources", {"name": "ds", "type": "swift", "url": "swift://c/\u0000"}),
    ("/v2/data-sources", {"name": "ds", "type": "swift", "url": "swift://c/o",
                          "credentials": {"us\u0000er": "x"}}),
    ("/v2/node-group-templates", {"name": "ngt", **FAKE, "flavor_id": "local.small",
                                  "node_processes": ["namenode"],
                                  "node_configs": {"HDFS": {"k": "v\u0000"}}}),
    ("/v2/clusters", {"name": "c", **FAKE, "node_groups": [MANAGER],
                      "cluster_configs": {"gen\u0000eral": {}}}),
])
def test_nul_bytes_anywhere_are_a_400(client: FlaskClient, path: str,
                                      body: dict[str, Any]) -> None:
    detail = refused(client.post(path, headers=project(), json=body), 400)
    assert "NUL" in detail


def test_lone_surrogates_are_a_400(client: FlaskClient) -> None:
    text = '{"name": "ds", "type": "swift", "url": "swift://c/o", "description": "\\ud800"}'
    detail = refused(client.post("/v2/data-sources", headers=project(), data=text,
                                 content_type="application/json"), 400)
    assert "surrogate" in detail


# -- 9. node group names -----------------------------------------------------------------------

BAD_GROUPS = [
    ([{**MANAGER, "name": "wk"}, {**MANAGER, "name": "WK", "node_processes": ["datanode"]}],
     "'WK'"),
    ([{**MANAGER, "name": "w.a"}], "'w.a'"),
    ([{**MANAGER, "name": "w_a"}], "'w_a'"),
    ([{**MANAGER, "name": "w-"}], "'w-'"),
    ([{**MANAGER, "name": "g" * 41}], "1-40 characters"),
]


@pytest.mark.parametrize(("groups", "named"), BAD_GROUPS)
@pytest.mark.parametrize("collection", ["clusters", "cluster-templates"])
def test_node_group_names_that_cannot_provision_are_a_400(
        client: FlaskClient, collection: str, groups: list[dict[str, Any]], named: str) -> None:
    headers = project()
    detail = refused(client.post(f"/v2/{collection}", headers=headers, json={
        "name": unique("c"), **FAKE, "node_groups": groups}), 400)
    assert named in detail
    assert names_listed(client, headers, collection, collection.replace("-", "_")) == []


@pytest.mark.parametrize(("groups", "named"), BAD_GROUPS)
def test_a_cluster_template_update_to_bad_node_group_names_is_a_400(
        client: FlaskClient, groups: list[dict[str, Any]], named: str) -> None:
    headers = project()
    made = client.post("/v2/cluster-templates", headers=headers, json={
        "name": unique("ct"), **FAKE, "node_groups": [MANAGER]})
    assert made.status_code == 202, made.get_json()
    template_id = made.get_json()["cluster_template"]["id"]
    detail = refused(client.patch(f"/v2/cluster-templates/{template_id}", headers=headers,
                                  json={"node_groups": groups}), 400)
    assert named in detail


def test_scaling_with_a_group_named_like_another_regardless_of_case_is_a_400(
        client: FlaskClient, store: Store) -> None:
    headers = project()
    made = client.post("/v2/clusters", headers=headers, json={
        "name": unique("c"), **FAKE, "node_groups": [
            MANAGER, {**MANAGER, "name": "wk", "node_processes": ["datanode"]}]})
    assert made.status_code == 202, made.get_json()
    cluster_id = made.get_json()["cluster"]["id"]
    from sahara_es.commands.caller import SYSTEM
    from sahara_es.events import resources as ev

    aggregate = resources.load(store, Kind.CLUSTER, cluster_id)
    resources.append(store, aggregate, [ev.ClusterStatusChanged("Active")], SYSTEM)
    worker = {"count": 1, "flavor_id": "local.small", "node_processes": ["datanode"]}
    for name, named in (("WK", "WK"), ("w.b", "'w.b'")):
        detail = refused(client.put(f"/v2/clusters/{cluster_id}", headers=headers, json={
            "add_node_groups": [{**worker, "name": name}]}), 400)
        assert named in detail


def test_a_template_stored_with_a_bad_group_name_cannot_make_a_cluster(
        client: FlaskClient, store: Store) -> None:
    """Templates recorded before the rule: the cluster made from one is refused up front."""
    headers = project()
    template = resources.create(
        store, Kind.CLUSTER_TEMPLATE, Caller(project_id=headers["X-Project-Id"]),
        {"name": unique("ct"), **FAKE, "node_groups": [{**MANAGER, "name": "m.1"}]})
    detail = refused(client.post("/v2/clusters", headers=headers, json={
        "name": unique("c"), **FAKE, "cluster_template_id": template["id"]}), 400)
    assert "'m.1'" in detail


# -- 10. no other project's private ids in refusals ----------------------------------------

def test_a_used_public_template_refusal_counts_other_projects_users_without_ids(
        client: FlaskClient) -> None:
    alpha, beta = project(), project()
    template = client.post("/v2/cluster-templates", headers=alpha, json={
        "name": unique("ct"), **FAKE, "node_groups": [MANAGER], "is_public": True})
    assert template.status_code == 202, template.get_json()
    template_id = template.get_json()["cluster_template"]["id"]
    theirs = client.post("/v2/clusters", headers=beta, json={
        "name": unique("c"), **FAKE, "cluster_template_id": template_id})
    assert theirs.status_code == 202, theirs.get_json()
    beta_cluster = theirs.get_json()["cluster"]["id"]
    mine = client.post("/v2/clusters", headers=alpha, json={
        "name": unique("c"), **FAKE, "cluster_template_id": template_id})
    assert mine.status_code == 202, mine.get_json()
    alpha_cluster = mine.get_json()["cluster"]["id"]
    for answer in (client.delete(f"/v2/cluster-templates/{template_id}", headers=alpha),
                   client.patch(f"/v2/cluster-templates/{template_id}", headers=alpha,
                                json={"description": "changed"})):
        detail = refused(answer, 409)
        assert beta_cluster not in detail and beta["X-Project-Id"] not in detail
        assert alpha_cluster in detail
        assert "1 resource of other projects" in detail


# -- the job binary folder lives in the state folder -------------------------------------------

def test_the_job_binary_folder_is_in_the_state_folder_and_private(
        store: Store, tmp_path: Path) -> None:
    app = app_for(ApiConfig(auth="noauth", data_dir=str(tmp_path / "state")), store=store)
    try:
        root = Path(app.config["JOB_BINARY_ROOT"])
        assert root == tmp_path / "state" / "job-binaries"
        assert stat.S_IMODE(root.stat().st_mode) == 0o700
        assert stat.S_IMODE(root.parent.stat().st_mode) == 0o700
    finally:
        stop_app(app)


def test_without_a_state_folder_the_job_binaries_follow_xdg_data_home(
        store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    app = app_for(ApiConfig(auth="noauth"), store=store)
    try:
        assert Path(app.config["JOB_BINARY_ROOT"]) == tmp_path / "xdg" / "sahara-es" \
            / "job-binaries"
        assert os.path.isdir(app.config["JOB_BINARY_ROOT"])
    finally:
        stop_app(app)


def test_the_cli_serves_job_binaries_from_its_data_dir(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from sahara_es.cli import api as cli_api

    built: list[ApiConfig] = []

    def capture(config: ApiConfig, **_: Any) -> Flask:
        built.append(config)
        raise SystemExit(0)

    monkeypatch.setattr(cli_api, "app_for", capture)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    from click.testing import CliRunner

    from sahara_es.cli.main import main

    url = f"sqlite:///{tmp_path}/s.db"
    CliRunner().invoke(main, ["--store", url, "api", "--auth", "noauth"])
    CliRunner().invoke(main, ["--store", url, "api", "--auth", "noauth",
                              "--data-dir", str(tmp_path / "mine")])
    assert [c.data_dir for c in built] == [str(tmp_path / "xdg" / "sahara-es"),
                                           str(tmp_path / "mine")]


def test_error_documents_carry_no_server_paths(client: FlaskClient) -> None:
    """A sample of refusals: none names the store's or the job binaries' folders."""
    headers = project()
    answers = [
        client.get("/v2/job-binaries/nope/data", headers=headers),
        client.post("/v2/clusters", headers=headers, data="{", content_type="application/json"),
        client.get("/v2/clusters/nope", headers=headers),
    ]
    for answer in answers:
        text = json.dumps(answer.get_json())
        assert answer.status_code < 500
        assert "/tmp" not in text and "/root" not in text and "sahara-es/" not in text


def test_a_crafted_request_id_is_replaced_and_long_keys_are_shortened(
        client: FlaskClient) -> None:
    kept = f"req-{uuid.uuid4()}"
    answer = client.get("/v2/clusters", headers={**project(), "X-Openstack-Request-Id": kept})
    assert answer.headers["X-Openstack-Request-Id"] == kept
    for crafted in ("req-\x01injected", "x" * 5000):
        answer = client.get("/v2/clusters", headers={**project(),
                                                     "X-Openstack-Request-Id": crafted})
        assert answer.headers["X-Openstack-Request-Id"].startswith("req-")
        assert answer.headers["X-Openstack-Request-Id"] != crafted
    detail = refused(client.post("/v2/data-sources", headers=project(), json={
        "name": unique("ds"), "type": "swift", "url": "swift://c/o", "k" * 100_000: 1}), 400)
    assert len(detail) < 200


@pytest.mark.parametrize("project_id", ["a\x00b", "a\x01", "p" * 256])
def test_a_crafted_development_project_id_is_a_400(client: FlaskClient,
                                                   project_id: str) -> None:
    """``noauth`` takes the project from a header: not one no project could have."""
    refused(client.get("/v2/clusters", headers={"X-Project-Id": project_id}), 400)


def test_a_public_job_template_shows_others_only_the_ids_of_its_private_binaries(
        client: FlaskClient) -> None:
    alpha, beta = project(), project()
    binary = client.post("/v2/job-binaries", headers=alpha, json={
        "name": unique("jb"), "url": "file:///srv/alpha/secret-main.py"})
    assert binary.status_code == 202, binary.get_json()
    binary_id = binary.get_json()["job_binary"]["id"]
    template = client.post("/v2/job-templates", headers=alpha, json={
        "name": unique("jt"), "type": "Spark", "mains": [binary_id], "is_public": True})
    assert template.status_code == 202, template.get_json()
    template_id = template.get_json()["job_template"]["id"]
    theirs = client.get(f"/v2/job-templates/{template_id}", headers=beta).get_json()
    assert theirs["job_template"]["mains"] == [{"id": binary_id}]
    listed = client.get("/v2/job-templates", headers=beta).get_json()["job_templates"]
    assert "secret-main" not in json.dumps(listed)
    mine = client.get(f"/v2/job-templates/{template_id}", headers=alpha).get_json()
    assert mine["job_template"]["mains"][0]["url"] == "file:///srv/alpha/secret-main.py"


def test_an_unusable_state_folder_does_not_stop_the_api(store: Store, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    app = app_for(ApiConfig(auth="noauth", data_dir=str(blocker / "state")), store=store)
    try:
        client = app.test_client()
        assert client.get("/v2/clusters", headers=project()).status_code == 200
        refused(client.get(f"/v2/job-binaries/{uuid.uuid4()}/data", headers=project()), 404)
    finally:
        stop_app(app)


def test_a_public_cluster_template_shows_others_no_private_node_group_template_ids(
        client: FlaskClient) -> None:
    """Project A's public cluster template uses A's private node group template: B sees the
    node groups the template stored, without the private id, and makes clusters from it."""
    alpha, beta = project(), project()
    private = client.post("/v2/node-group-templates", headers=alpha, json={
        "name": unique("ngt"), **FAKE, "flavor_id": "local.small",
        "node_processes": ["namenode"]})
    assert private.status_code == 202, private.get_json()
    ngt_id = private.get_json()["node_group_template"]["id"]
    made = client.post("/v2/cluster-templates", headers=alpha, json={
        "name": unique("ct"), **FAKE, "is_public": True, "node_groups": [
            {"name": "manager", "count": 1, "node_group_template_id": ngt_id}]})
    assert made.status_code == 202, made.get_json()
    template_id = made.get_json()["cluster_template"]["id"]

    theirs = client.get(f"/v2/cluster-templates/{template_id}", headers=beta).get_json()
    (group,) = theirs["cluster_template"]["node_groups"]
    assert group["node_group_template_id"] is None
    assert group["flavor_id"] == "local.small" and group["node_processes"] == ["namenode"]
    listed = client.get("/v2/cluster-templates", headers=beta).get_json()
    assert ngt_id not in json.dumps(listed)
    mine = client.get(f"/v2/cluster-templates/{template_id}", headers=alpha).get_json()
    assert mine["cluster_template"]["node_groups"][0]["node_group_template_id"] == ngt_id

    cluster = client.post("/v2/clusters", headers=beta, json={
        "name": unique("c"), **FAKE, "cluster_template_id": template_id})
    assert cluster.status_code == 202, cluster.get_json()
    assert ngt_id not in json.dumps(cluster.get_json())
    cluster_id = cluster.get_json()["cluster"]["id"]
    shown = client.get(f"/v2/clusters/{cluster_id}", headers=beta).get_json()
    assert shown["cluster"]["node_groups"][0]["node_processes"] == ["namenode"]
    assert ngt_id not in json.dumps(shown)
    # A's own cluster from the template keeps (and pins) the node group template
    own = client.post("/v2/clusters", headers=alpha, json={
        "name": unique("c"), **FAKE, "cluster_template_id": template_id})
    assert own.status_code == 202, own.get_json()
    assert own.get_json()["cluster"]["node_groups"][0]["node_group_template_id"] == ngt_id
    detail = refused(client.delete(f"/v2/node-group-templates/{ngt_id}", headers=alpha), 409)
    assert own.get_json()["cluster"]["id"] in detail and cluster_id not in detail
    # naming A's private node group template in a body is B's 400, as an unknown one
    refused(client.post("/v2/cluster-templates", headers=beta, json={
        "name": unique("ct"), **FAKE, "node_groups": [
            {"name": "manager", "count": 1, "node_group_template_id": ngt_id}]}), 400)


def test_a_public_cluster_shows_others_no_private_node_group_template_ids(
        client: FlaskClient) -> None:
    alpha, beta = project(), project()
    private = client.post("/v2/node-group-templates", headers=alpha, json={
        "name": unique("ngt"), **FAKE, "flavor_id": "local.small",
        "node_processes": ["namenode"]})
    ngt_id = private.get_json()["node_group_template"]["id"]
    cluster = client.post("/v2/clusters", headers=alpha, json={
        "name": unique("c"), **FAKE, "is_public": True, "node_groups": [
            {"name": "manager", "count": 1, "node_group_template_id": ngt_id}]})
    assert cluster.status_code == 202, cluster.get_json()
    cluster_id = cluster.get_json()["cluster"]["id"]
    theirs = client.get(f"/v2/clusters/{cluster_id}", headers=beta)
    assert theirs.status_code == 200 and ngt_id not in theirs.get_data(as_text=True)
    mine = client.get(f"/v2/clusters/{cluster_id}", headers=alpha).get_json()
    assert mine["cluster"]["node_groups"][0]["node_group_template_id"] == ngt_id


# -- job binaries: each project reads only its own folder ---------------------------------------

def binary_data(client: FlaskClient, headers: dict[str, str], url: str,
                **extra: Any) -> TestResponse:
    made = client.post("/v2/job-binaries", headers=headers, json={
        "name": unique("jb"), "url": url, **extra})
    assert made.status_code == 202, made.get_json()
    return client.get(f"/v2/job-binaries/{made.get_json()['job_binary']['id']}/data",
                      headers=headers)


def test_a_project_reads_only_the_job_binaries_of_its_own_folder(client: FlaskClient,
                                                                 app: Flask) -> None:
    alpha, beta = project(), project()
    root = Path(app.config["JOB_BINARY_ROOT"])
    alpha_folder = root / alpha["X-Project-Id"]
    alpha_folder.mkdir()
    secret = alpha_folder / "secret.py"
    secret.write_text("alpha's secret\n")
    (root / "shared.py").write_text("in no project's folder\n")

    assert binary_data(client, alpha, f"file://{secret}").data == b"alpha's secret\n"
    # B naming A's file, directly or through its own folder, reads nothing
    beta_folder = root / beta["X-Project-Id"]
    beta_folder.mkdir()
    for url in (f"file://{secret}", f"file://{beta_folder}/../{alpha['X-Project-Id']}/secret.py",
                f"file://{root}/shared.py", f"file://{beta_folder}"):
        detail = refused(binary_data(client, beta, url), 404)
        assert str(root) not in detail and "secret" not in detail
    # nor through a link in its folder to A's file or anywhere else
    (beta_folder / "link.py").symlink_to(secret)
    (beta_folder / "elsewhere").symlink_to(root)
    for url in (f"file://{beta_folder}/link.py", f"file://{beta_folder}/elsewhere/shared.py"):
        refused(binary_data(client, beta, url), 404)
    # A's public binary is B's to read: it is read from A's folder
    public = client.post("/v2/job-binaries", headers=alpha, json={
        "name": unique("jb"), "url": f"file://{secret}", "is_public": True})
    public_id = public.get_json()["job_binary"]["id"]
    read = client.get(f"/v2/job-binaries/{public_id}/data", headers=beta)
    assert read.status_code == 200 and read.data == b"alpha's secret\n"


def test_a_project_id_unfit_for_a_folder_name_gets_a_hashed_folder(client: FlaskClient,
                                                                   app: Flask) -> None:
    import hashlib

    from sahara_es.api.views.edp import project_folder_name

    odd = {"X-Project-Id": f"team.{uuid.uuid4().hex[:6]} ../x"}
    folder = f"sha256.{hashlib.sha256(odd['X-Project-Id'].encode()).hexdigest()}"
    assert project_folder_name(odd["X-Project-Id"]) == folder
    assert project_folder_name("abc_DEF-123") == "abc_DEF-123"
    root = Path(app.config["JOB_BINARY_ROOT"])
    (root / folder).mkdir()
    (root / folder / "main.py").write_text("odd\n")
    assert binary_data(client, odd, f"file://{root}/{folder}/main.py").data == b"odd\n"


# -- numbers JSON has no room for ----------------------------------------------------------------

@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e999", "-1e400"])
@pytest.mark.parametrize("path", ["/v2/node-group-templates", "/v2/jobs"])
def test_nan_and_infinity_are_a_400(client: FlaskClient, number: str, path: str) -> None:
    headers = project()
    if path == "/v2/jobs":
        body: dict[str, Any] = {
            "cluster_id": str(uuid.uuid4()), "job_template_id": str(uuid.uuid4()),
            "job_configs": {"configs": {"x": "NUMBER"}}}
    else:
        body = {"name": unique("ngt"), **FAKE, "flavor_id": "local.small",
                "node_processes": ["namenode"], "node_configs": {"HDFS": {"x": "NUMBER"}}}
    text = json.dumps(body).replace('"NUMBER"', number)
    detail = refused(client.post(path, headers=headers, data=text,
                                 content_type="application/json"), 400)
    assert "finite" in detail
    assert names_listed(client, headers, "node-group-templates", "node_group_templates") == []


def test_large_finite_numbers_are_taken(client: FlaskClient) -> None:
    body = {"name": unique("ngt"), **FAKE, "flavor_id": "local.small",
            "node_processes": ["namenode"], "node_configs": {"HDFS": {"x": "NUMBER"}}}
    text = json.dumps(body).replace(
        '"NUMBER"', "1e308, \"y\": -0.0, \"z\": 123456789012345678901234567890")
    made = client.post("/v2/node-group-templates", headers=project(), data=text,
                       content_type="application/json")
    assert made.status_code == 202, made.get_json()
    assert made.get_json()["node_group_template"]["node_configs"]["HDFS"]["x"] == 1e308
