"""Every registered projection is maintained: on a fresh store served all-in-one (API and
its projector), ``sahara-es projections verify`` passes, ``workflows`` included."""

from __future__ import annotations

import json
import time
from pathlib import Path

from click.testing import CliRunner

from sahara_es.api.app import ApiConfig, stop_app
from sahara_es.api.compose import app_for
from sahara_es.cli.main import main
from sahara_es.projections import (
    PROJECTIONS,
    RESOURCE_PROJECTIONS,
    Projector,
    WorkflowsProjection,
)
from sahara_es.store import Store, open_store


def wait_until_built(store: Store, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(store.live_generation(name) is not None for name in PROJECTIONS):
            return
        time.sleep(0.05)
    missing = [name for name in PROJECTIONS if store.live_generation(name) is None]
    raise AssertionError(f"projections never built: {missing}")


def test_verify_passes_on_a_fresh_store_served_by_the_api(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    runner = CliRunner()
    started = runner.invoke(main, ["--store", url, "workflow", "start", "test.noops",
                                   "--params", '{"tasks": 2, "shape": "linear"}',
                                   "--load", "tests.workflows"])
    assert started.exit_code == 0, started.output
    workflow_id = started.output.strip()

    store = open_store(url, upgrade=True)
    app = app_for(ApiConfig(store_url=url, auth="noauth", data_dir=str(tmp_path)),
                  store=store)
    try:
        wait_until_built(store)
    finally:
        stop_app(app)
        store.close()

    verified = runner.invoke(main, ["--store", url, "projections", "verify"])
    assert verified.exit_code == 0, verified.output
    for name in PROJECTIONS:
        assert f"{name}: 0 differences" in verified.output
    shown = runner.invoke(main, ["--store", url, "projections", "show", "workflows",
                                 workflow_id])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["type"] == "test.noops"


def test_the_projector_on_the_shared_lease_keeps_every_registered_projection(
        tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}", upgrade=True)
    try:
        given = [p() for p in RESOURCE_PROJECTIONS.values()]
        shared = Projector(store, given, owner="api-1")
        assert sorted(p.name for p in shared.projections) == sorted(PROJECTIONS)
        assert shared.projections[:len(given)] == given  # those given are the ones used

        assert sorted(p.name for p in Projector(store, owner="p").projections) == sorted(
            PROJECTIONS)

        # A projector on a lease of its own (a test's, a benchmark's) keeps what it is given.
        own = Projector(store, [WorkflowsProjection()], owner="t", lease="projector-test")
        assert [p.name for p in own.projections] == ["workflows"]
    finally:
        store.close()
