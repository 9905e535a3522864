"""A real cluster's private key shows nowhere: not in its events, ``events show``, ``list`` or
``export``, ``audit``, ``replay``, the logs, the API; and once the cluster is deleted, its
data key is gone and what its events keep of the key opens for nobody; on both stores."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from sahara_es.cli.main import main
from sahara_es.commands.secrets import SecretBox, SecretUnreadable
from sahara_es.provisioning import ids
from sahara_es.provisioning.services import CLUSTER_KEY_PURPOSE, KEY_CATEGORY, ensure_cluster_key
from sahara_es.store import Store
from tests.clouds import create_fake_cluster, running_cloud, show_cluster
from tests.contract.test_cluster_key import secret_parts, shows_secret

TIMEOUT = 120.0


def cli(url: str, *args: str) -> Result:
    result = CliRunner().invoke(main, ["--store", url, *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def wait_for_status(client: object, project: str, cluster_id: str,
                    *statuses: str) -> dict[str, object] | None:
    deadline = time.monotonic() + TIMEOUT
    while True:
        cluster = show_cluster(client, project, cluster_id)  # type: ignore[arg-type]
        if cluster is None and "gone" in statuses:
            return None
        if cluster is not None and cluster["status"] in statuses:
            return cluster
        assert time.monotonic() < deadline, f"still {cluster and cluster['status']}"
        time.sleep(0.2)


def everything_shown(url: str, cluster_id: str, project: str) -> dict[str, str]:
    """What every reading command prints about the cluster, by command (its standard output
    and error both)."""
    key_stream = f"{KEY_CATEGORY}-{cluster_id}"
    shown = {
        "events show key": cli(url, "events", "show", key_stream).output,
        "events show key --json": cli(url, "events", "show", key_stream, "--json").output,
        "events show cluster": cli(url, "events", "show", cluster_id, "--kind", "cluster",
                                   "--json").output,
        "events list": cli(url, "events", "list", "--category", KEY_CATEGORY,
                           "--json").output,
        "events export key": cli(url, "events", "export", key_stream).output,
        "events export category": cli(url, "events", "export", "--category",
                                      KEY_CATEGORY).output,
        "audit": cli(url, "audit", "--all", "--project", project, "--format", "jsonl").output,
    }
    for workflow in (ids.create_id(cluster_id), ids.delete_id(cluster_id)):
        for flags in (["--json"], ["--steps"]):
            name = f"replay {workflow} {' '.join(flags)}"
            shown[name] = CliRunner().invoke(main, ["--store", url, "replay", "workflow",
                                                    workflow, *flags]).output
    return shown


def test_a_cluster_s_private_key_shows_nowhere_and_its_delete_shreds_it(
    store: Store, url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with running_cloud(store, tmp_path, hosts=1) as cloud:
        cluster_id = create_fake_cluster(cloud.client, cloud.project)
        cluster = wait_for_status(cloud.client, cloud.project, cluster_id, "Active", "Error")
        assert cluster is not None and cluster["status"] == "Active", cluster
        private, public = ensure_cluster_key(store, cluster_id)
        api_answer = json.dumps(cluster)

        assert cloud.client.delete(f"/v2/clusters/{cluster_id}", headers={
            "X-Project-Id": cloud.project}).status_code == 204
        wait_for_status(cloud.client, cloud.project, cluster_id, "gone")

    key_stream = f"{KEY_CATEGORY}-{cluster_id}"
    owner = f"cluster-{cluster_id}"
    assert store.get_data_key(owner) is None
    with pytest.raises(SecretUnreadable) as unreadable:
        ensure_cluster_key(store, cluster_id)

    shown = everything_shown(url, cluster_id, cloud.project)
    shown["api"] = api_answer
    shown["logs"] = caplog.text
    shown["error"] = str(unreadable.value)
    shown["stored events"] = json.dumps([e.data for e in store.read(key_stream)])
    assert all(cluster_id in text for name, text in shown.items()
               if name.startswith(("events", "replay", "logs"))), "a reading shows nothing"
    assert "ClusterKeyGenerated" in shown["events show key"]
    assert all('"succeeded"' in text for name, text in shown.items()
               if name.startswith("replay") and name.endswith("--json"))
    leaks = [name for name, text in shown.items() if shows_secret(text, private)]
    assert leaks == [], f"the private key shows in {leaks}"
    assert all(len(part) >= 16 for part in secret_parts(private)[1:])

    exported = [json.loads(line) for line in
                cli(url, "events", "export", key_stream).stdout.splitlines()]
    assert [(r["type"], r["schema_version"]) for r in exported] == [("ClusterKeyGenerated", 2)]
    sealed = exported[0]["data"]["sealed_private_key"]
    assert exported[0]["data"]["public_key"] == public
    with pytest.raises(SecretUnreadable):
        SecretBox(store).open(owner, sealed, purpose=CLUSTER_KEY_PURPOSE)
