"""A user's key pair on a cluster's real nodes: imported into the project as Nova's would
be (``sahara-es keypair import``), named by the cluster (``user_keypair_id``), accepted by
every node with the service's management key; ``update_keypair`` (saharaclient's
``clusters.update_keypair``) makes the nodes accept the key pair's current key instead of
its previous one, the management key kept."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paramiko  # type: ignore[import-untyped]
import pytest
from click.testing import CliRunner

from sahara_es.cli.main import main
from sahara_es.infra.ssh import generate_keypair, load_private_key
from sahara_es.provisioning.services import ensure_cluster_key
from sahara_es.store import Store
from tests.clouds import Cloud, running_cloud, show_cluster

TIMEOUT = 120.0


@pytest.fixture
def cloud(store: Store, tmp_path: Path) -> Iterator[Cloud]:
    with running_cloud(store, tmp_path, hosts=1) as running:
        yield running


def import_key(url: str, project: str, name: str, public_key: str, folder: Path) -> None:
    key_file = folder / f"{uuid.uuid4().hex}.pub"
    key_file.write_text(public_key + "\n")
    result = CliRunner().invoke(main, ["--store", url, "keypair", "import", "--project",
                                       project, "--name", name, "--public-key-file",
                                       str(key_file)])
    assert result.exit_code == 0, result.output
    assert "SHA256:" in result.output


def wait_for(cloud: Cloud, cluster_id: str, done: Any) -> dict[str, Any]:
    deadline = time.monotonic() + TIMEOUT
    while True:
        cluster = show_cluster(cloud.client, cloud.project, cluster_id)
        assert cluster is not None
        if done(cluster):
            return cluster
        assert time.monotonic() < deadline, cluster
        time.sleep(0.2)


def nodes(cloud: Cloud, cluster: dict[str, Any]) -> list[tuple[str, int, str]]:
    """Each node's address, SSH port and login user."""
    found = []
    for group in cluster["node_groups"]:
        for instance in group["instances"]:
            real = cloud.services.provider.get_instance(instance["instance_name"])
            assert real is not None
            found.append((real.address, real.ssh_port, real.username))
    return found


def logs_in(node: tuple[str, int, str], private_key: str) -> bool:
    address, port, user = node
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    try:
        client.connect(address, port=port, username=user, pkey=load_private_key(private_key),
                       look_for_keys=False, allow_agent=False, timeout=10)
        _, out, _ = client.exec_command("echo in")
        answer: bytes = out.read()
        return answer.strip() == b"in"
    except paramiko.AuthenticationException:
        return False
    finally:
        client.close()


def create_cluster(cloud: Cloud, **extra: Any) -> Any:
    return cloud.client.post("/v2/clusters", headers=cloud.headers, json={
        "name": f"c{uuid.uuid4().hex[:8]}", "plugin_name": "fake", "plugin_version": "0.1",
        "node_groups": [{"name": "manager", "flavor_id": "local.small",
                         "node_processes": ["namenode"], "count": 1},
                        {"name": "workers", "flavor_id": "local.small",
                         "node_processes": ["datanode"], "count": 1}], **extra})


def test_update_keypair_replaces_the_users_key_on_every_node_and_keeps_the_management_key(
        cloud: Cloud, store: Store, url: str, tmp_path: Path) -> None:
    old_private, old_public = generate_keypair("old")
    new_private, new_public = generate_keypair("new")
    import_key(url, cloud.project, "mine", old_public, tmp_path)
    created = create_cluster(cloud, user_keypair_id="mine")
    assert created.status_code == 202, created.get_json()
    cluster_id = created.get_json()["cluster"]["id"]
    cluster = wait_for(cloud, cluster_id, lambda c: c["status"] in ("Active", "Error"))
    assert cluster["status"] == "Active", cluster["status_description"]
    assert cluster["user_keypair_id"] == "mine"
    management, _ = ensure_cluster_key(store, cluster_id)
    reached = nodes(cloud, cluster)
    assert len(reached) == 2
    assert all(logs_in(node, old_private) for node in reached)
    assert not any(logs_in(node, new_private) for node in reached)

    import_key(url, cloud.project, "mine", new_public, tmp_path)
    updated = cloud.client.patch(f"/v2/clusters/{cluster_id}", headers=cloud.headers,
                                 json={"update_keypair": True})
    assert updated.status_code == 202, updated.get_json()

    def pushed(c: dict[str, Any]) -> bool:
        return any(s["step_name"] == "Updating key pair" and s["successful"] is not None
                   for s in c["provision_progress"])

    cluster = wait_for(cloud, cluster_id, pushed)
    step = next(s for s in cluster["provision_progress"] if s["step_name"] == "Updating key pair")
    assert step["successful"] is True and len(step["events"]) == 2
    assert step["step_type"] == "Engine: update key pair"
    assert cluster["status"] == "Active"
    assert all(logs_in(node, new_private) for node in reached)
    assert not any(logs_in(node, old_private) for node in reached)
    assert all(logs_in(node, management) for node in reached)

    assert cloud.client.delete(f"/v2/clusters/{cluster_id}",
                               headers=cloud.headers).status_code == 204
    wait_for_gone(cloud, cluster_id)


def wait_for_gone(cloud: Cloud, cluster_id: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while show_cluster(cloud.client, cloud.project, cluster_id) is not None:
        assert time.monotonic() < deadline
        time.sleep(0.2)


def test_a_cluster_naming_a_key_pair_its_project_lacks_is_refused_with_nothing_created(
        cloud: Cloud, url: str, tmp_path: Path) -> None:
    _, public = generate_keypair()
    import_key(url, f"other-{cloud.project}", "theirs", public, tmp_path)
    for name in ("nobody", "theirs"):
        refused = create_cluster(cloud, user_keypair_id=name)
        assert refused.status_code == 400, refused.get_json()
        assert name in refused.get_json()["error_message"]
    listed = cloud.client.get("/v2/clusters", headers=cloud.headers).get_json()
    assert [c for c in listed["clusters"] if not c["is_public"]] == []


def test_update_keypair_is_refused_before_the_cluster_is_active_or_without_a_key_pair(
        cloud: Cloud, url: str, tmp_path: Path) -> None:
    _, public = generate_keypair()
    import_key(url, cloud.project, "gone-soon", public, tmp_path)
    keyed = create_cluster(cloud, user_keypair_id="gone-soon").get_json()["cluster"]["id"]
    keyless = create_cluster(cloud).get_json()["cluster"]["id"]
    early = cloud.client.patch(f"/v2/clusters/{keyed}", headers=cloud.headers,
                               json={"update_keypair": True})
    assert early.status_code == 409, early.get_json()
    for cluster_id in (keyed, keyless):
        wait_for(cloud, cluster_id, lambda c: c["status"] == "Active")
    without = cloud.client.patch(f"/v2/clusters/{keyless}", headers=cloud.headers,
                                 json={"update_keypair": True})
    assert without.status_code == 400
    assert "user_keypair_id" in without.get_json()["error_message"]
    deleted = CliRunner().invoke(main, ["--store", url, "keypair", "delete", "--project",
                                        cloud.project, "--name", "gone-soon"])
    assert deleted.exit_code == 0, deleted.output
    orphaned = cloud.client.patch(f"/v2/clusters/{keyed}", headers=cloud.headers,
                                  json={"update_keypair": True})
    assert orphaned.status_code == 400
    assert "gone-soon" in orphaned.get_json()["error_message"]
    for cluster_id in (keyed, keyless):
        cloud.client.delete(f"/v2/clusters/{cluster_id}", headers=cloud.headers)
    for cluster_id in (keyed, keyless):
        wait_for_gone(cloud, cluster_id)


def test_a_public_key_file_that_is_no_public_key_is_refused_without_echoing_it(
        store: Store, url: str, tmp_path: Path) -> None:
    private, _ = generate_keypair()
    key_file = tmp_path / "id.pub"
    key_file.write_text(private)
    result = CliRunner().invoke(main, ["--store", url, "keypair", "import", "--project", "p",
                                       "--name", "k", "--public-key-file", str(key_file)])
    assert result.exit_code != 0
    assert "not an OpenSSH public key" in result.output or "one OpenSSH line" in result.output
    assert private.splitlines()[1] not in result.output


def test_key_pairs_are_listed_with_their_fingerprints_and_deleted(
        store: Store, url: str, tmp_path: Path) -> None:
    project = f"p{uuid.uuid4().hex[:8]}"
    _, first = generate_keypair("first")
    _, second = generate_keypair("second")
    import_key(url, project, "a", first, tmp_path)
    import_key(url, project, "b", second, tmp_path)

    def listed() -> list[dict[str, Any]]:
        result = CliRunner().invoke(main, ["--store", url, "keypair", "list", "--project",
                                           project, "--json"])
        assert result.exit_code == 0, result.output
        return [json.loads(line) for line in result.output.splitlines()]

    assert [(k["name"], k["public_key"]) for k in listed()] == [("a", first), ("b", second)]
    assert all(k["fingerprint"].startswith("SHA256:") for k in listed())
    deleted = CliRunner().invoke(main, ["--store", url, "keypair", "delete", "--project",
                                        project, "--name", "a"])
    assert deleted.exit_code == 0, deleted.output
    assert [k["name"] for k in listed()] == ["b"]
    again = CliRunner().invoke(main, ["--store", url, "keypair", "delete", "--project",
                                      project, "--name", "a"])
    assert again.exit_code != 0 and "no key pair a" in again.output
