"""A plugin whose package is missing (pyspark for Spark, distributed for Dask) offers no
version, rather than one that cannot run: the API lists it as unavailable with the reason,
and a template or cluster of it gets a 400 saying what to install. The missing package is
simulated by the version lookup failing, not by uninstalling it."""

from __future__ import annotations

from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest
from flask.testing import FlaskClient

from sahara_es.api.app import ApiConfig, stop_app
from sahara_es.api.compose import app_for
from sahara_es.commands.errors import Invalid
from sahara_es.infra.local import FLAVORS
from sahara_es.plugins import dask, spark
from sahara_es.plugins.catalog import (
    PluginCatalog,
    PluginUnavailable,
    load_plugins,
    unavailable,
)
from sahara_es.store import open_store

PACKAGES = {"spark": (spark, "pyspark"), "dask": (dask, "distributed")}
HEADERS = {"X-Project-Id": "p1"}


def without(monkeypatch: pytest.MonkeyPatch, module: ModuleType, package: str) -> None:
    """The plugin module's version lookup finds no ``package``; every other one is found."""

    def version(name: str) -> str:
        if name == package:
            raise metadata.PackageNotFoundError(name)
        return metadata.version(name)

    monkeypatch.setattr(module, "metadata", SimpleNamespace(
        version=version, PackageNotFoundError=metadata.PackageNotFoundError))


@pytest.mark.parametrize("name", sorted(PACKAGES))
def test_a_plugin_without_its_package_offers_no_version_and_says_why(
        name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    module, package = PACKAGES[name]
    plugin = load_plugins([name])[name]
    assert plugin.versions() == [metadata.version(package)]
    assert unavailable(plugin) is None

    without(monkeypatch, module, package)

    assert plugin.versions() == []
    reason = unavailable(plugin)
    assert reason is not None and f"pip install {package}" in reason
    lookup = spark.spark_version if name == "spark" else dask.dask_version
    with pytest.raises(PluginUnavailable, match=package):
        lookup()
    summary = plugin.summary()
    assert summary["versions"] == [] and summary["version_labels"] == {}
    assert summary["plugin_labels"]["enabled"]["status"] is False
    assert "Unavailable" in summary["description"] and package in summary["description"]


def test_the_catalog_refuses_an_unavailable_plugin_with_the_reason(
        monkeypatch: pytest.MonkeyPatch) -> None:
    catalog = PluginCatalog(load_plugins(["spark"]), dict(FLAVORS))
    version = spark.spark_version()
    groups = [{"name": "m", "node_processes": ["master"], "count": 1},
              {"name": "w", "node_processes": ["worker"], "count": 1}]
    without(monkeypatch, spark, "pyspark")

    for check in (lambda: catalog.check_plugin("spark", version),
                  lambda: catalog.check_scaling("spark", version, groups, {"w": 2}, [])):
        with pytest.raises(Invalid, match=r"plugin spark is unavailable: .*pip install pyspark"):
            check()


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FlaskClient]:
    without(monkeypatch, spark, "pyspark")
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}", upgrade=True)
    app = app_for(ApiConfig(auth="noauth", run_projector=False, data_dir=str(tmp_path)),
                  store=store)
    yield app.test_client()
    stop_app(app)
    store.close()


def test_the_api_lists_it_unavailable_and_refuses_its_templates_and_clusters(
        client: FlaskClient) -> None:
    listed = {p["name"]: p for p in client.get("/v2/plugins", headers=HEADERS)
              .get_json()["plugins"]}
    assert listed["spark"]["versions"] == []
    assert "pyspark" in listed["spark"]["description"]
    assert listed["dask"]["versions"] == [metadata.version("distributed")]
    shown = client.get("/v2/plugins/spark", headers=HEADERS).get_json()["plugin"]
    assert shown["plugin_labels"]["enabled"]["status"] is False
    job_types = client.get("/v2/job-types", headers=HEADERS).get_json()["job_types"]
    assert all(p["name"] != "spark" for t in job_types for p in t["plugins"])

    version = metadata.version("pyspark")  # what a client remembers from before
    requests: list[tuple[str, dict[str, Any]]] = [
        ("/v2/node-group-templates", {"name": "ngt", "plugin_name": "spark",
                                      "plugin_version": version, "flavor_id": "local.small",
                                      "node_processes": ["master"]}),
        ("/v2/clusters", {"name": "c1", "plugin_name": "spark", "plugin_version": version,
                          "node_groups": [
                              {"name": "m", "flavor_id": "local.small",
                               "node_processes": ["master"], "count": 1},
                              {"name": "w", "flavor_id": "local.small",
                               "node_processes": ["worker"], "count": 1}]}),
    ]
    for path, body in requests:
        refused = client.post(path, headers=HEADERS, json=body)
        assert refused.status_code == 400, refused.get_json()
        message = str(refused.get_json())
        assert "plugin spark is unavailable" in message and "pip install pyspark" in message
