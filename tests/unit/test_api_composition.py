"""The v2 API is composed in one place (``api.compose.app_for``): the CLI, the WSGI module,
the tests' helpers and the benchmarks all go through it; ``create_app`` is its factory."""

from __future__ import annotations

import ast
import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask

from sahara_es.api import compose
from sahara_es.api.app import ApiConfig, stop_app
from sahara_es.api.service import Service
from sahara_es.commands.catalog import NoQuota
from sahara_es.infra.quotas import Quotas
from sahara_es.provisioning.services import QuotaGate
from sahara_es.store import Store, open_store

ROOT = Path(__file__).resolve().parents[2]


def service(app: Flask) -> Service:
    found: Service = app.extensions["sahara_es"]
    return found


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(f"sqlite:///{tmp_path}/store.db", upgrade=True)
    yield opened
    opened.close()


class Spy:
    """Stands in for ``app_for``: records each call, then composes as the real one does."""

    def __init__(self) -> None:
        self.real = compose.app_for
        self.calls: list[tuple[ApiConfig, dict[str, Any], Flask]] = []

    def __call__(self, config: ApiConfig, **options: Any) -> Flask:
        app = self.real(config, **options)
        self.calls.append((config, options, app))
        return app


def test_without_a_store_it_opens_the_configured_one_with_its_schema(tmp_path: Path) -> None:
    app = compose.app_for(ApiConfig(store_url=f"sqlite:///{tmp_path}/new.db", auth="noauth",
                                    run_projector=False, data_dir=str(tmp_path)))
    try:
        assert (tmp_path / "new.db").is_file()
        assert isinstance(service(app).quota, NoQuota)
        assert app.test_client().get("/v2/clusters").status_code == 200
    finally:
        stop_app(app)
        service(app).store.close()


def test_store_quotas_are_the_stores_claims_and_a_given_quota_is_kept(
        store: Store, tmp_path: Path) -> None:
    config = ApiConfig(auth="noauth", run_projector=False, data_dir=str(tmp_path))
    claimed = service(compose.app_for(config, store=store, quota=compose.STORE_QUOTAS))
    assert claimed.store is store
    assert isinstance(claimed.quota, QuotaGate) and claimed.quota.quotas.store is store

    given = QuotaGate(Quotas(store))
    assert service(compose.app_for(config, store=store, quota=given)).quota is given
    assert isinstance(service(compose.app_for(config, store=store)).quota, NoQuota)


def test_the_wsgi_application_is_composed_by_app_for(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    spy = Spy()
    monkeypatch.setattr(compose, "app_for", spy)
    monkeypatch.setenv("SAHARA_ES_STORE", f"sqlite:///{tmp_path}/wsgi.db")
    monkeypatch.setenv("SAHARA_ES_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SAHARA_ES_AUTH", "noauth")
    monkeypatch.setenv("SAHARA_ES_PROJECTOR", "0")
    monkeypatch.delitem(sys.modules, "sahara_es.api.wsgi", raising=False)

    wsgi = importlib.import_module("sahara_es.api.wsgi")
    monkeypatch.delitem(sys.modules, "sahara_es.api.wsgi")  # the next import composes anew

    [(config, options, app)] = spy.calls
    try:
        assert wsgi.application is app
        assert config.store_url == f"sqlite:///{tmp_path}/wsgi.db" and config.auth == "noauth"
        assert options == {"quota": compose.STORE_QUOTAS}
        assert isinstance(service(app).quota, QuotaGate)
    finally:
        stop_app(app)
        service(app).store.close()


def test_the_cli_api_is_composed_by_app_for(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from sahara_es.cli import api as cli_api
    from sahara_es.cli.main import main

    class Served(Exception):
        pass

    served: list[Flask] = []

    def make_server(host: str, port: int, app: Flask, **_: Any) -> Any:
        served.append(app)
        raise Served

    spy = Spy()
    monkeypatch.setattr(cli_api, "app_for", spy)
    monkeypatch.setattr(cli_api, "make_server", make_server)
    url = f"sqlite:///{tmp_path}/cli.db"

    result = CliRunner().invoke(main, ["--store", url, "api", "--auth", "noauth",
                                       "--data-dir", str(tmp_path)])

    assert isinstance(result.exception, Served), result.output
    [(config, options, app)] = spy.calls
    try:
        assert served == [app]
        assert (config.store_url, config.auth, config.engines) == (url, "noauth", True)
        assert options["quota"] == compose.STORE_QUOTAS
        assert isinstance(service(app).quota, QuotaGate)
    finally:
        stop_app(app)


def factory_calls() -> list[str]:
    """Where ``create_app`` is called, other than by ``app_for``."""
    found = []
    for folder in ("sahara_es", "tests", "benchmarks"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path == ROOT / "sahara_es" / "api" / "compose.py":
                continue
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Call) and (
                        (isinstance(node.func, ast.Name) and node.func.id == "create_app")
                        or (isinstance(node.func, ast.Attribute)
                            and node.func.attr == "create_app")):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_every_app_is_composed_by_app_for() -> None:
    """The CLI (api and all-in-one), the WSGI module, the tests and the benchmarks."""
    assert factory_calls() == []
