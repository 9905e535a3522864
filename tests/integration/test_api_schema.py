"""The v2 API against its own OpenAPI document, with schemathesis: for every operation,
generated requests (valid and invalid) never get a 5xx, and every answer's status, media type,
body and headers are the ones the document declares.

The document is loaded over HTTP from a running API (SQLite store, ``noauth``), so what is
checked is the document as served, against the app as served. A few resources are made first,
so that operations on one resource are also tried with ids that exist and their answers'
bodies are checked, not only their 404s.

The pytest parameters are the API's endpoints (``openapi.OPERATIONS``), so a failure names
the operation; each runs the operation's methods (PATCH and PUT for updates).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from sahara_es.api.openapi import OPERATIONS
from sahara_es.store import open_store
from tests.apiserver import RunningApi, known_parameters, running_api

PROJECT = "schemathesis"
HEADERS = {"X-Project-Id": PROJECT}
MAX_EXAMPLES = 10
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance, response_headers_conformance]


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApi]:
    folder: Path = tmp_path_factory.mktemp("api-schema")
    store = open_store(f"sqlite:///{folder}/s.db", upgrade=True)
    try:
        with running_api(store, auth="noauth", plugins=["spark", "dask", "fake"]) as running:
            yield running
    finally:
        store.close()


@pytest.fixture(scope="module")
def api_schema(api: RunningApi) -> schemathesis.BaseSchema:
    config = schemathesis.Config.from_dict({
        "base-url": api.url.removesuffix("/v2"),
        "headers": HEADERS,
    })
    return schemathesis.openapi.from_url(f"{api.url}/openapi.json", config=config)


@pytest.fixture(scope="module")
def existing(api: RunningApi) -> dict[str, str]:
    """Ids of resources that exist, by path parameter kind."""

    def made(path: str, key: str, body: dict[str, Any]) -> str:
        answer = requests.post(f"{api.url}/{path}", json=body, headers=HEADERS, timeout=10)
        assert answer.status_code == 202, answer.text
        return str(answer.json()[key]["id"])

    ngt = made("node-group-templates", "node_group_template", {
        "name": "st-manager", "plugin_name": "fake", "plugin_version": "0.1",
        "flavor_id": "local.small", "node_processes": ["namenode"]})
    ct = made("cluster-templates", "cluster_template", {
        "name": "st-template", "plugin_name": "fake", "plugin_version": "0.1",
        "node_groups": [{"name": "manager", "count": 1, "node_group_template_id": ngt}]})
    cluster = made("clusters", "cluster", {
        "name": "st-cluster", "plugin_name": "fake", "plugin_version": "0.1",
        "cluster_template_id": ct})
    data_source = made("data-sources", "data_source", {
        "name": "st-input", "type": "hdfs", "url": "hdfs://namenode/input"})
    binary = made("job-binaries", "job_binary", {"name": "st-script.sh",
                                                 "url": "file:///nonexistent/st-script.sh"})
    job_template = made("job-templates", "job_template", {
        "name": "st-job", "type": "Shell", "mains": [binary]})
    return {"node_group_template": ngt, "cluster_template": ct, "cluster": cluster,
            "data_source": data_source, "job_binary": binary, "job_template": job_template}


def chosen_cases(endpoint: str, existing: dict[str, str]) -> list[dict[str, Any]]:
    """Requests that succeed, for operations whose generated requests hardly ever do (a
    plugin, flavor and processes that exist; a page of a list), so their answers are checked
    too."""
    if endpoint.split(".")[1].startswith("list_") and endpoint != "plugins.list_plugins" \
            and endpoint != "plugins.list_job_types":
        return [{"query": {"limit": 1}}]
    fake = {"plugin_name": "fake", "plugin_version": "0.1"}
    bodies: dict[str, dict[str, Any]] = {
        "templates.create_node_group_template": {
            "name": "st-worker", **fake, "flavor_id": "local.small",
            "node_processes": ["datanode"]},
        "templates.create_cluster_template": {
            "name": "st-inline", **fake, "node_groups": [
                {"name": "manager", "count": 1, "flavor_id": "local.small",
                 "node_processes": ["namenode"]}]},
        "clusters.create_cluster": {  # several at once: a list of enveloped clusters
            "name": "st-many", **fake, "count": 2,
            "cluster_template_id": existing["cluster_template"]},
        "edp.create_job_template": {"name": "st-job-2", "type": "Shell",
                                    "mains": [existing["job_binary"]]},
    }
    return [{"body": bodies[endpoint], "media_type": "application/json"}] \
        if endpoint in bodies else []


def operation_ids(endpoint: str) -> set[str]:
    base = endpoint.replace(".", "_")
    return {base, f"{base}_put"}


@pytest.mark.parametrize("endpoint", sorted(OPERATIONS))
def test_operation_conforms(endpoint: str, api_schema: schemathesis.BaseSchema,
                            existing: dict[str, str]) -> None:
    operations = [result.ok() for result in api_schema.get_all_operations()
                  if result.ok().definition.raw.get("operationId") in operation_ids(endpoint)]
    assert operations, f"{endpoint} is not in the served document"
    known = known_parameters(endpoint, existing)
    for chosen in chosen_cases(endpoint, existing):
        for operation in operations:
            answer = operation.Case(**chosen).call_and_validate(headers=HEADERS, checks=CHECKS)
            assert answer.status_code < 300, answer.text
    strategies = []
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            strategies.append(operation.as_strategy(mode))
            if known is not None and mode is GenerationMode.POSITIVE:
                strategies.append(operation.as_strategy(mode, path_parameters=known))

    @given(case=st.one_of(strategies))
    @settings(max_examples=MAX_EXAMPLES * len(strategies), deadline=None, derandomize=True,
              database=None, suppress_health_check=list(HealthCheck))
    def conforms(case: schemathesis.Case) -> None:
        case.call_and_validate(headers=HEADERS, checks=CHECKS)

    conforms()


@pytest.mark.parametrize(("wanted", "status"), [("data-processing 9.9", 406),
                                                ("data-processing two", 400),
                                                ("data-processing latest", 200)])
def test_version_header_answers_conform(wanted: str, status: int,
                                        api_schema: schemathesis.BaseSchema) -> None:
    """Generated headers seldom name this service, so its refusals are asked for directly."""
    operation = api_schema.find_operation_by_id("plugins_list_plugins")
    answer = operation.Case(headers={"OpenStack-API-Version": wanted}).call_and_validate(
        headers=HEADERS, checks=CHECKS)
    assert answer.status_code == status, answer.text


def test_refusals_without_a_token_conform(tmp_path: Path) -> None:
    """In token mode, every operation asked without a token answers a declared 401."""
    store = open_store(f"sqlite:///{tmp_path}/s.db", upgrade=True)
    try:
        with running_api(store, auth="token") as running:
            document = schemathesis.openapi.from_url(
                f"{running.url}/openapi.json",
                config=schemathesis.Config.from_dict(
                    {"base-url": running.url.removesuffix("/v2")}))
            for result in document.get_all_operations():
                operation = result.ok()
                names = [p.name for p in operation.path_parameters]
                case = operation.Case(path_parameters=dict.fromkeys(names, "x"))
                answer = case.call_and_validate(checks=CHECKS)
                assert answer.status_code == 401, (operation.label, answer.text)
    finally:
        store.close()
