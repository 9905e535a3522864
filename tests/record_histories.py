"""Record the workflow histories that ``tests/unit/test_recorded_histories.py`` replays.

    python -m tests.record_histories [SCENARIO ...]

runs each scenario for real on a fresh SQLite store (local nodes with their own sshd, the
``fake`` plugin, the API and engines as the integration tests run them) and writes
``tests/fixtures/histories/<scenario>.json``. Without arguments it records them all:

- ``create``: a cluster of a namenode and a datanode (a ``manager`` and a ``worker``
  before the fake plugin took Sahara's process names) is created, Active;
- ``scale``: that cluster grown to two workers, then shrunk back to one (two workflows);
- ``delete``: that cluster deleted;
- ``rollback``: a create whose namenode's configuration fails (``fail_configure``): every
  step done is reverted, the cluster in Error;
- ``takeover``: an engine process killed (SIGKILL) while the nodes of a create are being
  configured, and another engine process taking the workflow over and finishing it.

It takes about a minute and needs root (node users, sshd), as the integration tests do.
Re-record only when a history is meant to change (doc/engine.rst, "Recorded histories").
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sahara_es.api.app import ApiConfig, stop_app
from sahara_es.api.compose import STORE_QUOTAS, app_for
from sahara_es.cli.context import NODES_ENV
from sahara_es.engine import wait_for
from sahara_es.events import registry
from sahara_es.events import workflow as wev
from sahara_es.events.resources import Kind
from sahara_es.infra import LocalProvider
from sahara_es.infra.quotas import QuotaLimits
from sahara_es.provisioning import ids
from sahara_es.provisioning.delete import provisioning_workflows
from sahara_es.provisioning.services import build_services, provisioning_services
from sahara_es.store import Store, open_store
from tests.clouds import Cloud, create_fake_cluster, running_cloud, show_cluster
from tests.engines import EngineProcess, wait_until
from tests.histories import FOLDER, check_file, write_history
from tests.nodes import node_root, remove_node_root

TIMEOUT = 180.0
SCENARIOS = ("create", "scale", "delete", "rollback", "takeover")


def code_version() -> str:
    """The commit the histories were recorded with (and whether the tree had changes)."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, check=True,
                                capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit


def cluster_stream(cluster_id: str) -> str:
    return Kind.CLUSTER.stream(cluster_id)


def wait_status(cloud: Cloud, cluster_id: str, *statuses: str) -> dict[str, Any] | None:
    found: list[dict[str, Any] | None] = [None]

    def reached() -> bool:
        found[0] = show_cluster(cloud.client, cloud.project, cluster_id)
        return (found[0] is None and "gone" in statuses) or (
            found[0] is not None and found[0]["status"] in statuses)

    wait_until(reached, timeout=TIMEOUT, poll=0.2)
    return found[0]


def finish(store: Store, workflow_id: str) -> str:
    state = wait_for(store, workflow_id, timeout=TIMEOUT)
    print(f"  {workflow_id}: {state.status} at v{state.version}", flush=True)
    return str(state.status)


class Recorder:
    def __init__(self, folder: Path, wanted: set[str]) -> None:
        self.folder = folder
        self.wanted = wanted
        self.code = code_version()

    def write(self, scenario: str, description: str, store: Store, workflow_ids: list[str],
              read: list[str]) -> None:
        if scenario not in self.wanted:
            return
        # What the workflows read: each stream as it was when the last of them ended.
        versions = {stream: store.stream_version(stream) for stream in read}
        path = self.folder / f"{scenario}.json"
        write_history(path, scenario=scenario, description=description, code=self.code,
                      store=store, workflow_ids=workflow_ids, read_streams=versions)
        print(f"wrote {path} ({', '.join(workflow_ids)})", flush=True)
        # A recording the current code cannot replay is a bug here, not a fixture.
        with tempfile.TemporaryDirectory() as scratch:
            for replayed in check_file(path, Path(scratch)):
                print(f"  replayed {replayed.workflow_id}: re-planned {replayed.replanned},"
                      f" spawns taken as recorded {replayed.not_replanned}", flush=True)

    def in_process(self, root: Path) -> None:
        """create, scale, delete and rollback: the API and an in-process engine."""
        if not self.wanted & {"create", "scale", "delete", "rollback"}:
            return
        store = open_store(f"sqlite:///{root}/store.db", upgrade=True)
        try:
            with running_cloud(store, root, hosts=2,
                               quota=QuotaLimits(instances=8, cores=16, ram_mb=32768)) as cloud:
                self._lifecycle(cloud, store)
                self._rollback(cloud, store)
        finally:
            store.close()

    def _lifecycle(self, cloud: Cloud, store: Store) -> None:
        if not self.wanted & {"create", "scale", "delete"}:
            return
        cluster_id = create_fake_cluster(cloud.client, cloud.project, workers=1)
        stream = cluster_stream(cluster_id)
        create = ids.create_id(cluster_id)
        assert finish(store, create) == "succeeded"
        wait_status(cloud, cluster_id, "Active")
        self.write("create", "a cluster (fake plugin, a namenode and a datanode) created on"
                   " local nodes, Active", store, [create], [stream])

        scales = []
        for count in (2, 1):
            answer = cloud.client.put(f"/v2/clusters/{cluster_id}", headers=cloud.headers,
                                      json={"resize_node_groups": [{"name": "workers",
                                                                     "count": count}]})
            assert answer.status_code == 202, answer.get_json()
            scale = next(w for w in provisioning_workflows(store, cluster_id)
                         if w.startswith("scale") and w not in scales)
            assert finish(store, scale) == "succeeded"
            wait_status(cloud, cluster_id, "Active")
            scales.append(scale)
        self.write("scale", "that cluster grown to two workers, then shrunk back to one",
                   store, scales, [stream])

        assert cloud.client.delete(f"/v2/clusters/{cluster_id}",
                                   headers=cloud.headers).status_code == 204
        assert finish(store, ids.delete_id(cluster_id)) == "succeeded"
        wait_status(cloud, cluster_id, "gone")
        self.write("delete", "that cluster deleted: services stopped, nodes, hosts and quota"
                   " given back", store, [ids.delete_id(cluster_id)], [stream])

    def _rollback(self, cloud: Cloud, store: Store) -> None:
        if "rollback" not in self.wanted:
            return
        cluster_id = create_fake_cluster(cloud.client, cloud.project, workers=1,
                                         configs={"fail_configure": "namenode"})
        create = ids.create_id(cluster_id)
        assert finish(store, create) == "rolled_back"
        wait_status(cloud, cluster_id, "Error")
        self.write("rollback", "a create whose namenode's configuration fails"
                   " (fail_configure): its steps reverted, latest first, the cluster in"
                   " Error", store, [create], [cluster_stream(cluster_id)])
        cloud.client.delete(f"/v2/clusters/{cluster_id}", headers=cloud.headers)
        wait_status(cloud, cluster_id, "gone")

    def takeover(self, root: Path) -> None:
        """An engine process killed mid-create (kill -9), another finishing the workflow."""
        if "takeover" not in self.wanted:
            return
        url = f"sqlite:///{root}/store.db"
        store = open_store(url, upgrade=True)
        tag = uuid.uuid4().hex[:6]
        extra = ("--data-dir", str(root), "--hosts", f"r{tag}-1=16:65536,r{tag}-2=16:65536")
        app = app_for(ApiConfig(auth="noauth", plugins=["fake"], engines=True), store=store,
                      quota=STORE_QUOTAS)
        client = app.test_client()
        project = f"p{tag}"
        try:
            with EngineProcess(url, f"doomed-{tag}", root, lease_ttl=3.0,
                               extra=extra) as doomed:
                cluster_id = create_fake_cluster(client, project, workers=2,
                                                 configs={"configure_seconds": 3})

                def status() -> str:
                    shown = show_cluster(client, project, cluster_id)
                    return shown["status"] if shown else "gone"

                wait_until(lambda: status() == "Configuring", timeout=TIMEOUT, poll=0.1)
                create = ids.create_id(cluster_id)
                # Killed while the nodes' configuration runs (their steps started).
                wait_until(lambda: _node_steps_started(store, create), timeout=30, poll=0.05)
                time.sleep(0.5)
                doomed.kill()
                print(f"  killed doomed-{tag} (kill -9)", flush=True)
                with EngineProcess(url, f"heir-{tag}", root, lease_ttl=3.0, extra=extra):
                    assert finish(store, create) == "succeeded"
                    owners = {e.metadata.engine_id for e in store.read(f"workflow-{create}")
                              if e.type == wev.WorkflowOwned.event_type}
                    assert owners == {f"doomed-{tag}", f"heir-{tag}"}, owners
                    self.write("takeover", "a create whose engine process was killed"
                               " (SIGKILL) while its nodes were being configured; another"
                               " engine process took it over and finished it", store,
                               [create], [cluster_stream(cluster_id)])
                    client.delete(f"/v2/clusters/{cluster_id}", headers={"X-Project-Id":
                                                                         project})
                    finish(store, ids.delete_id(cluster_id))
        finally:
            stop_app(app)
            services = build_services(store, root=Path(os.environ[NODES_ENV]))
            provider = provisioning_services(services).provider
            if isinstance(provider, LocalProvider):  # what the killed engine left, if any
                for instance in provider.list_instances():
                    provider.delete_instance(instance.name)
            store.close()


def _node_steps_started(store: Store, workflow_id: str) -> bool:
    for recorded in store.read(f"workflow-{workflow_id}"):
        event = registry.decode(recorded)
        if isinstance(event, wev.TaskStarted) and event.task_id.startswith("plan.configure."):
            return True
    return False


@contextmanager
def nodes_folder() -> Iterator[Path]:
    """Engine processes put their nodes where ``NODES_ENV`` says: a folder their users can
    traverse, removed afterwards with whatever runs in it."""
    folder = node_root()
    previous = os.environ.get(NODES_ENV)
    os.environ[NODES_ENV] = str(folder)
    try:
        yield folder
    finally:
        if previous is None:
            os.environ.pop(NODES_ENV, None)
        else:
            os.environ[NODES_ENV] = previous
        remove_node_root(folder)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.record_histories",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("scenarios", nargs="*", metavar="SCENARIO",
                        help=f"what to record, of {', '.join(SCENARIOS)} (default: all)")
    parser.add_argument("--out", type=Path, default=FOLDER,
                        help=f"where to write them (default: {FOLDER})")
    args = parser.parse_args(argv)
    wanted = set(args.scenarios or SCENARIOS)
    if wanted - set(SCENARIOS):
        parser.error(f"no scenario {', '.join(sorted(wanted - set(SCENARIOS)))}")
    args.out.mkdir(parents=True, exist_ok=True)
    recorder = Recorder(args.out, wanted)
    steps: list[Callable[[Path], None]] = [recorder.in_process, recorder.takeover]
    with nodes_folder():
        for step in steps:
            with tempfile.TemporaryDirectory(prefix="sahara-es-histories-") as root:
                step(Path(root))
    return 0


if __name__ == "__main__":
    sys.exit(main())
