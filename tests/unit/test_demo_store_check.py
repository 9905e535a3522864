"""The demo writes only event types the registry knows: ``sahara-es store check`` passes
after its writes (the all-in-one demo's API part is run in tests/integration/
test_cli_cluster.py, which checks the store after it too)."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from sahara_es.cli import demo
from sahara_es.cli.main import main
from sahara_es.events import registry
from sahara_es.store import open_store


def test_store_check_passes_after_the_demos_writes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = open_store(url, upgrade=True)
    try:
        demo.store_demo(store)
        demo.workflow_demo(store)
        written = {event.type for event in store.read_feed(None, limit=10_000)}
    finally:
        store.close()
    assert "ClusterStatusChanged" in written and "WorkflowRolledBack" in written
    assert all(registry.known(name) for name in written), written

    checked = CliRunner().invoke(main, ["--store", url, "store", "check"])

    assert checked.exit_code == 0, checked.output
    assert "ok:" in checked.output and " 0 problems" in checked.output
