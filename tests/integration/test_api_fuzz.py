"""Fuzzing the v2 API in process: whatever a tenant sends, the answer is never a 5xx.

Two passes, both on a SQLite store and the Flask app called through WSGI (no socket):

- schemathesis over the app's own OpenAPI document: every operation's bodies, query strings
  and path parameters, valid and invalid, with ids that exist and ids that do not;
- hypothesis strategies for what a document does not describe: bodies nested thousands of
  levels deep, bodies around and over the size limit, NUL bytes, lone surrogates, very long
  strings and odd unicode in names, descriptions, URLs and configs (keys and values), in path
  parameters and query strings. What a create accepts must then read back, list and delete
  without a 5xx either.

Examples are few and derandomized, so the file runs in well under three minutes on two cores
and fails the same way twice.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import schemathesis
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from werkzeug.test import TestResponse

from sahara_es.api.app import ApiConfig, stop_app
from sahara_es.api.compose import app_for
from sahara_es.api.limits import MAX_BODY_BYTES, MAX_JSON_DEPTH, nesting_depth_exceeds
from sahara_es.api.openapi import OPERATIONS
from sahara_es.store import Store, open_store
from tests.apiserver import known_parameters

PROJECT = "fuzz"
HEADERS = {"X-Project-Id": PROJECT}
MAX_EXAMPLES = 25
"""Per strategy of one operation (positive, negative, on existing ids)."""
HOSTILE_EXAMPLES = 100
FAKE = {"plugin_name": "fake", "plugin_version": "0.1"}
MANAGER = {"name": "manager", "count": 1, "flavor_id": "local.small",
           "node_processes": ["namenode"]}
SETTINGS = settings(deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    folder: Path = tmp_path_factory.mktemp("api-fuzz")
    store = open_store(f"sqlite:///{folder}/s.db", upgrade=True)
    yield store
    store.close()


@pytest.fixture(scope="module")
def app(store: Store, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    app = app_for(ApiConfig(auth="noauth", plugins=["spark", "dask", "fake"],
                            data_dir=str(tmp_path_factory.mktemp("state"))), store=store)
    yield app
    stop_app(app)


@pytest.fixture(scope="module")
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture(scope="module")
def api_schema(app: Flask) -> schemathesis.BaseSchema:
    config = schemathesis.Config.from_dict({"headers": HEADERS})
    return schemathesis.openapi.from_wsgi("/v2/openapi.json", app, config=config)


def created(client: FlaskClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    answer = client.post(f"/v2/{path}", json=body, headers=HEADERS)
    assert answer.status_code == 202, answer.get_json()
    (resource,) = answer.get_json().values()
    return dict(resource)


@pytest.fixture(scope="module")
def existing(client: FlaskClient) -> dict[str, str]:
    """Ids that exist, by kind, so operations on one resource are fuzzed past their 404."""
    ngt = created(client, "node-group-templates", {
        "name": "fz-manager", **FAKE, "flavor_id": "local.small",
        "node_processes": ["namenode"]})["id"]
    ct = created(client, "cluster-templates", {
        "name": "fz-template", **FAKE, "node_groups": [
            {"name": "manager", "count": 1, "node_group_template_id": ngt}]})["id"]
    cluster = created(client, "clusters", {"name": "fz-cluster", **FAKE,
                                           "cluster_template_id": ct})["id"]
    data_source = created(client, "data-sources", {"name": "fz-input", "type": "hdfs",
                                                   "url": "hdfs://namenode/input"})["id"]
    binary = created(client, "job-binaries", {"name": "fz-script.sh",
                                              "url": "file:///nonexistent/fz.sh"})["id"]
    job_template = created(client, "job-templates", {"name": "fz-job", "type": "Shell",
                                                     "mains": [binary]})["id"]
    return {"node_group_template": ngt, "cluster_template": ct, "cluster": cluster,
            "data_source": data_source, "job_binary": binary, "job_template": job_template}


def server_error(answer: Any) -> str:
    return f"{answer.status_code}: {answer.text[:500] if hasattr(answer, 'text') else ''}"


# -- schemathesis over the document ------------------------------------------------------------

@pytest.mark.parametrize("endpoint", sorted(OPERATIONS))
def test_no_operation_answers_a_server_error(endpoint: str, api_schema: schemathesis.BaseSchema,
                                             existing: dict[str, str]) -> None:
    base = endpoint.replace(".", "_")
    operations = [result.ok() for result in api_schema.get_all_operations()
                  if result.ok().definition.raw.get("operationId") in (base, f"{base}_put")]
    assert operations, f"{endpoint} is not in the served document"
    known = known_parameters(endpoint, existing)
    strategies = []
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            strategies.append(operation.as_strategy(mode))
            if known is not None:
                strategies.append(operation.as_strategy(mode, path_parameters=known))

    @given(case=st.one_of(strategies))
    @settings(SETTINGS, max_examples=MAX_EXAMPLES * len(strategies))
    def never_5xx(case: schemathesis.Case) -> None:
        case.call_and_validate(headers=HEADERS, checks=[not_a_server_error])

    never_5xx()


# -- hostile payloads ------------------------------------------------------------------------

CREATES: dict[str, dict[str, Any]] = {
    "node-group-templates": {"name": "ngt", **FAKE, "flavor_id": "local.small",
                             "node_processes": ["namenode"], "node_configs": {}},
    "cluster-templates": {"name": "ct", **FAKE, "node_groups": [MANAGER],
                          "cluster_configs": {}},
    "clusters": {"name": "c", **FAKE, "node_groups": [MANAGER], "cluster_configs": {}},
    "data-sources": {"name": "ds", "type": "swift", "url": "swift://c/o", "credentials": {}},
    "job-binaries": {"name": "jb", "url": "file:///data/x.jar", "extra": {}},
    "job-templates": {"name": "jt", "type": "Java", "interface": []},
}
"""A body each create accepts, as the base hostile strings are put into."""

CONFIG_FIELD = {"node-group-templates": "node_configs", "cluster-templates": "cluster_configs",
                "clusters": "cluster_configs", "data-sources": "credentials",
                "job-binaries": "extra"}

odd_text = st.one_of(
    st.text(st.characters(exclude_categories=()), max_size=80),  # surrogates, controls...
    st.text(st.sampled_from("\x00\u202e\ufeff\u200b\ud800\udfff/.:\\%$'\"é漢🙂-_ "),
            max_size=40),
    st.builds(lambda c, n: c * n, st.sampled_from("aé漢🙂/\x00"),
              st.integers(200, 5000)),
)


def answered(client: FlaskClient, method: str, path: str, **kwargs: Any) -> TestResponse:
    answer = client.open(path, method=method, headers=HEADERS, **kwargs)
    assert answer.status_code < 500, (method, path, answer.get_data()[:500])
    if answer.status_code >= 400:
        body = answer.get_json()
        assert body["errors"][0]["status"] == answer.status_code, body
    return answer


def exercised(client: FlaskClient, collection: str, answer: TestResponse) -> None:
    """What a create accepted reads back, lists and deletes without a 5xx."""
    if answer.status_code != 202:
        return
    (resource,) = answer.get_json().values()
    path = f"/v2/{collection}/{resource['id']}"
    answered(client, "GET", path)
    if collection == "job-binaries":
        answered(client, "GET", f"{path}/data")
    answered(client, "GET", f"/v2/{collection}?name={quote(resource.get('name') or '')}")
    answered(client, "DELETE", path)


@given(collection=st.sampled_from(sorted(CREATES)),
       where=st.sampled_from(["name", "description", "url", "config key", "config value",
                              "node group name", "url path"]),
       value=odd_text)
@settings(SETTINGS, max_examples=HOSTILE_EXAMPLES * 2)
def test_odd_strings_anywhere_in_a_create_are_never_a_server_error(
        client: FlaskClient, collection: str, where: str, value: str) -> None:
    body = json.loads(json.dumps(CREATES[collection]))
    if where in ("name", "description", "url"):
        body[where] = value
    elif where == "url path":
        if "url" not in body:
            return
        body["url"] += f"/{value}"
    elif where == "node group name":
        if "node_groups" not in body:
            return
        body["node_groups"] = [{**MANAGER, "name": value}]
    else:
        field = CONFIG_FIELD.get(collection)
        if field is None:
            return
        configs: dict[str, Any] = (
            {"general": {value: "v"}} if where == "config key" else {"general": {"k": value}})
        if field in ("credentials", "extra"):
            configs = {value: "v"} if where == "config key" else {"k": value}
        body[field] = configs
    text = json.dumps(body)  # lone surrogates travel as \\udXXX escapes
    answer = answered(client, "POST", f"/v2/{collection}", data=text,
                      content_type="application/json")
    exercised(client, collection, answer)


@given(depth=st.integers(MAX_JSON_DEPTH + 1, 20_000), opener=st.sampled_from(["[", "{\"a\":"]),
       closed=st.booleans(), collection=st.sampled_from(sorted(CREATES)))
@settings(SETTINGS, max_examples=HOSTILE_EXAMPLES)
def test_deep_nesting_is_a_400(client: FlaskClient, depth: int, opener: str, closed: bool,
                               collection: str) -> None:
    closer = "]" if opener == "[" else "}"
    text = opener * depth + ("1" + closer * depth if closed else "")
    answer = answered(client, "POST", f"/v2/{collection}", data=text,
                      content_type="application/json")
    assert answer.status_code == 400


@given(size=st.integers(MAX_BODY_BYTES - 2000, MAX_BODY_BYTES * 3),
       collection=st.sampled_from(sorted(CREATES)))
@settings(SETTINGS, max_examples=12)
def test_bodies_around_the_size_limit_are_a_4xx(client: FlaskClient, size: int,
                                                collection: str) -> None:
    body = {**CREATES[collection], "description": ""}
    filler = size - len(json.dumps(body))
    body["description"] = "x" * max(filler, 0)
    answer = answered(client, "POST", f"/v2/{collection}", json=body)
    if size > MAX_BODY_BYTES:
        assert answer.status_code == 413
    else:
        assert answer.status_code == 400  # a description is at most 1024 characters


@given(segment=odd_text.filter(lambda s: s not in ("", ".", "..")),
       collection=st.sampled_from([*sorted(CREATES), "jobs"]),
       query=st.dictionaries(st.sampled_from(["name", "limit", "marker", "sort_by", "type",
                                              "plugin_name", "status", "show_progress", "x"]),
                             odd_text, max_size=3))
@settings(SETTINGS, max_examples=HOSTILE_EXAMPLES)
def test_odd_ids_and_query_strings_are_never_a_server_error(
        client: FlaskClient, segment: str, collection: str, query: dict[str, str]) -> None:
    def escaped(value: str) -> str:
        return quote(value.encode("utf-8", "surrogatepass"), safe="")

    string = "&".join(f"{k}={escaped(v)}" for k, v in query.items())
    answered(client, "GET", f"/v2/{collection}?{string}")
    answered(client, "GET", f"/v2/{escaped(segment)}/{collection}?{string}")  # as a project
    answered(client, "GET", f"/v2/{collection}/{escaped(segment)}")
    answered(client, "DELETE", f"/v2/{collection}/{escaped(segment)}")
    answered(client, "PATCH", f"/v2/{collection}/{escaped(segment)}",
             json={"description": "x"})


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(st.sampled_from('ab"\\[]{}:,\u00e9 ')),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(st.sampled_from('k"\\[]{}'), max_size=4), inner, max_size=3),
    max_leaves=40)


def depth_of(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((depth_of(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((depth_of(v) for v in value.values()), default=0)
    return 0


@given(value=json_values, limit=st.integers(0, 6), indent=st.sampled_from([None, 1]))
@settings(SETTINGS, max_examples=300)
def test_the_nesting_scan_counts_as_json_nests(value: Any, limit: int,
                                               indent: int | None) -> None:
    """Brackets and quotes inside strings (escaped or not) do not fool the scan."""
    text = json.dumps(value, indent=indent, ensure_ascii=False)
    assert nesting_depth_exceeds(text, limit) == (depth_of(value) > limit)
