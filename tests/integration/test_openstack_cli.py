"""The ``openstack dataprocessing`` commands (python-openstackclient with saharaclient's OSC
plugin, API v2) run as real processes against the service over HTTP, end to end: each must
exit 0, as it did against Sahara.

With ``--os-auth-type admin_token`` the one endpoint serves every service the commands ask,
so ``image register`` finds its image through the image API (Glance's URL layout) at the
same ``/v2/images/<id>``. Node group templates are created from ``--json`` files: with
``--flavor`` the command looks the flavor up in Nova, which this endpoint is not.

One cluster of Sahara's ``fake`` plugin (``namenode`` + ``datanode``) on real local nodes is
built for the module by ``cluster create --image ... --wait``, from an image of the
provider's catalogue registered and tagged with the commands; it is shown, updated, scaled,
runs a Shell job (``job execute``) and is deleted last. On SQLite: the commands and the
nodes are what is tested here.

The commands are the era's, as the issue tried them: python-openstackclient 8, osc-lib 3.2 and
python-saharaclient 4.2 from ``tools/openstack-client``'s own venv. osc-lib 4 (which the test
environment may hold) refuses saharaclient 4.2's column formatters in its listers
("Invalid formatter provided.") whatever the service answers.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sahara_es.api.app import ApiConfig
from sahara_es.api.compose import app_for
from sahara_es.edp.manager import JobLimits
from sahara_es.edp.storage import StoragePolicy, project_folder_name
from sahara_es.store import Store, open_store
from tests.apiserver import RunningApi, running_api
from tests.clouds import Cloud, running_cloud
from tests.engines import wait_until

pytestmark = pytest.mark.xdist_group("local-infra")

PLUGIN = "fake"
VERSION = "0.1"
FLAVOR = "local.small"
FINAL_JOB = ("SUCCEEDED", "FAILED", "KILLED")
COMMAND_TIMEOUT = 600.0
"""``cluster create --wait`` polls every 5 s until the cluster is Active."""


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    folder = tmp_path_factory.mktemp("openstack-cli")
    opened = open_store(f"sqlite:///{folder / 'store.db'}", upgrade=True)
    yield opened
    opened.close()


@pytest.fixture(scope="module")
def binary_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("job-binaries")


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory, store: Store,
          binary_root: Path) -> Iterator[Cloud]:
    with running_cloud(store, tmp_path_factory.mktemp("openstack-cli-nodes"), hosts=2,
                       storage_policy=StoragePolicy(binary_root=binary_root),
                       job_limits=JobLimits(poll_interval=0.2, cancel_timeout=20,
                                            log_interval=1.0)) as running:
        yield running


@pytest.fixture(scope="module")
def api(cloud: Cloud, store: Store, binary_root: Path) -> Iterator[RunningApi]:
    app = app_for(ApiConfig(auth="token", plugins=["spark", "dask", "fake"], engines=True,
                            job_binary_root=str(binary_root)),
                  store=store, quota=cloud.services.quota)
    with running_api(store, app=app) as running:
        yield running


@dataclass
class Cli:
    """``openstack`` as one project's member (``run``) or admin (``admin``)."""

    api: RunningApi
    project: str
    folder: Path
    openstack: str

    def run(self, *words: str, roles: tuple[str, ...] = ()) -> str:
        token = self.api.token(self.project, *roles)
        command = [self.openstack,
                   "--os-auth-type", "admin_token", "--os-endpoint", self.api.url,
                   "--os-token", token, "--os-data-processing-api-version", "2",
                   "--os-data-processing-url", self.api.url, *words]
        env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
        done = subprocess.run(command, capture_output=True, text=True,
                              timeout=COMMAND_TIMEOUT, env=env, cwd=self.folder)
        assert done.returncode == 0, (shlex.join(["openstack", *words]), done.stdout,
                                      done.stderr[-3000:])
        return done.stdout

    def json(self, *words: str, roles: tuple[str, ...] = ()) -> Any:
        """The command's ``-f json`` output (after any line it writes before it)."""
        out = self.run(*words, "-f", "json", roles=roles)
        starts = [i for i in (out.find("{"), out.find("[")) if i >= 0]
        assert starts, out
        return json.loads(out[min(starts):])

    def admin(self, *words: str) -> Any:
        return self.json(*words, roles=("admin",))

    def file(self, content: Any) -> str:
        """A JSON file holding ``content``, for the commands' ``--json`` and the like."""
        path = self.folder / f"{uuid.uuid4().hex[:8]}.json"
        path.write_text(json.dumps(content))
        return str(path)


@pytest.fixture(scope="module")
def openstack() -> str:
    """The ``openstack`` command of tools/openstack-client's venv (installed once)."""
    script = Path(__file__).resolve().parents[2] / "tools" / "openstack-client"
    return subprocess.run([str(script)], check=True, capture_output=True, text=True,
                          timeout=COMMAND_TIMEOUT).stdout.strip()


@pytest.fixture(scope="module")
def cli(api: RunningApi, cloud: Cloud, openstack: str,
        tmp_path_factory: pytest.TempPathFactory) -> Cli:
    return Cli(api, cloud.project, tmp_path_factory.mktemp("openstack-cli-files"), openstack)


def listed(cli: Cli, *words: str) -> list[dict[str, Any]]:
    """A lister's ``-f json`` rows."""
    return list(cli.json(*words))


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def image_id(cli: Cli, cloud: Cloud) -> str:
    """An image of the provider's catalogue (Glance's, for Sahara), registered with a user
    and tagged with the fake plugin's required tags through the commands."""
    catalogue = sorted(cloud.services.provider.images())
    assert catalogue, "the provider's image catalogue is empty"
    chosen = catalogue[0]
    registered = cli.admin("dataprocessing", "image", "register", chosen,
                           "--username", "ubuntu", "--description", "fake nodes")
    assert registered["Username"] == "ubuntu" and registered["Id"] == chosen
    tagged = cli.admin("dataprocessing", "image", "tags", "add", chosen,
                       "--tags", PLUGIN, VERSION)
    assert set(tagged["Tags"].split(", ")) == {PLUGIN, VERSION}
    return chosen


def node_group_template(cli: Cli, process: str) -> dict[str, Any]:
    return dict(cli.json("dataprocessing", "node", "group", "template", "create", "--json",
                         cli.file({"name": unique(process), "plugin_name": PLUGIN,
                                   "plugin_version": VERSION, "flavor_id": FLAVOR,
                                   "node_processes": [process]})))


@dataclass
class Templates:
    namenode: dict[str, Any]
    datanode: dict[str, Any]
    cluster: dict[str, Any]


@pytest.fixture(scope="module")
def templates(cli: Cli) -> Templates:
    namenode = node_group_template(cli, "namenode")
    datanode = node_group_template(cli, "datanode")
    cluster = cli.json("dataprocessing", "cluster", "template", "create",
                       "--name", unique("fake"), "--description", "a namenode, a datanode",
                       "--node-groups", f"{namenode['Id']}:1", f"{datanode['Id']}:1")
    return Templates(namenode, datanode, cluster)


@pytest.fixture(scope="module")
def cluster(cli: Cli, templates: Templates, image_id: str) -> dict[str, Any]:
    created = cli.json("dataprocessing", "cluster", "create", "--name", unique("cluster"),
                       "--cluster-template", templates.cluster["Id"], "--image", image_id,
                       "--wait")
    assert created["Status"] == "Active", created
    assert created["Image"] == image_id
    return dict(created)


def shown_cluster(cli: Cli, cluster_id: str) -> dict[str, Any]:
    return dict(cli.json("dataprocessing", "cluster", "show", cluster_id))


# -- images and plugins -------------------------------------------------------------------

def test_image_register_and_tags_add_and_remove(cli: Cli, image_id: str) -> None:
    added = cli.admin("dataprocessing", "image", "tags", "add", image_id, "--tags", "extra")
    assert set(added["Tags"].split(", ")) == {PLUGIN, VERSION, "extra"}
    removed = cli.admin("dataprocessing", "image", "tags", "remove", image_id,
                        "--tags", "extra")
    assert set(removed["Tags"].split(", ")) == {PLUGIN, VERSION}
    shown = cli.json("dataprocessing", "image", "show", image_id)
    assert shown["Username"] == "ubuntu" and shown["Description"] == "fake nodes"


def test_image_list_shows_the_registered_image_with_its_tags(cli: Cli, image_id: str) -> None:
    images = listed(cli, "dataprocessing", "image", "list", "--long")
    assert image_id in [i["Id"] for i in images]
    tagged = listed(cli, "dataprocessing", "image", "list", "--tags", PLUGIN)
    assert image_id in [i["Id"] for i in tagged]


def test_plugin_update_changes_a_label_with_an_admin_token(cli: Cli) -> None:
    update = cli.file({"plugin_labels": {"hidden": {"status": True}}})
    updated = cli.run("dataprocessing", "plugin", "update", PLUGIN, update,
                      roles=("admin",))
    assert "Plugin: hidden" in updated
    shown = cli.json("dataprocessing", "plugin", "show", PLUGIN)
    assert shown["Name"] == PLUGIN
    shown_version = cli.json("dataprocessing", "plugin", "show", PLUGIN,
                             "--plugin-version", VERSION)
    assert shown_version["Required image tags"] in (f"{PLUGIN}, {VERSION}",
                                                    f"{VERSION}, {PLUGIN}")
    cli.run("dataprocessing", "plugin", "update", PLUGIN,
            cli.file({"plugin_labels": {"hidden": {"status": False}}}), roles=("admin",))


# -- templates ----------------------------------------------------------------------------

def test_node_group_template_create_show_update_and_list(cli: Cli) -> None:
    created = node_group_template(cli, "datanode")
    assert created["Node processes"] == "datanode"
    assert created["Volumes per node"] == 0 and created["Use autoconfig"] is True
    shown = cli.json("dataprocessing", "node", "group", "template", "show", created["Id"])
    assert shown["Name"] == created["Name"] and shown["Flavor id"] == FLAVOR
    updated = cli.json("dataprocessing", "node", "group", "template", "update",
                       created["Id"], "--description", "a second datanode kind",
                       "--volumes-per-node", "2", "--volumes-size", "10")
    assert updated["Description"] == "a second datanode kind"
    assert updated["Volumes per node"] == 2 and updated["Volumes size"] == 10
    names = cli.json("dataprocessing", "node", "group", "template", "list", "--plugin",
                     PLUGIN)
    assert created["Id"] in [t["Id"] for t in names]


def test_node_group_template_list_long(cli: Cli) -> None:
    created = node_group_template(cli, "datanode")
    templates = listed(cli, "dataprocessing", "node", "group", "template", "list", "--long",
                       "--plugin", PLUGIN)
    mine = [t for t in templates if t["Id"] == created["Id"]]
    assert mine and mine[0]["Node processes"] == "datanode"


def test_cluster_template_create_show_and_update(cli: Cli, templates: Templates) -> None:
    created = templates.cluster
    assert created["Plugin name"] == PLUGIN and created["Plugin version"] == VERSION
    assert sorted(created["Node groups"].split(", ")) == sorted(
        [f"{templates.namenode['Name']}:1", f"{templates.datanode['Name']}:1"])
    shown = cli.json("dataprocessing", "cluster", "template", "show", created["Id"])
    assert shown["Name"] == created["Name"] and shown["Anti affinity"] == ""
    updated = cli.json("dataprocessing", "cluster", "template", "update", created["Id"],
                       "--description", "the module's")
    assert updated["Description"] == "the module's"


# -- the cluster and its job ----------------------------------------------------------------

def test_cluster_show_and_update(cli: Cli, cluster: dict[str, Any]) -> None:
    shown = shown_cluster(cli, cluster["Id"])
    assert shown["Status"] == "Active" and shown["Plugin name"] == PLUGIN
    progress = cli.run("dataprocessing", "cluster", "show", cluster["Id"], "--show-progress",
                       "--verification")
    assert "Step completed successfully" in progress
    updated = cli.json("dataprocessing", "cluster", "update", cluster["Id"],
                       "--description", "built by the cli")
    assert updated["Description"] == "built by the cli"
    listed = cli.json("dataprocessing", "cluster", "list", "--long")
    assert cluster["Id"] in [c["Id"] for c in listed]


def test_cluster_scale_adds_a_datanode(cli: Cli, cluster: dict[str, Any],
                                       templates: Templates) -> None:
    # Without --wait: the command's wait reads ``.cluster`` off the client's ``get``, which
    # has none (against Sahara too); the cluster is shown until it is Active again.
    cli.json("dataprocessing", "cluster", "scale", cluster["Id"],
             "--instances", f"{templates.datanode['Id']}:2")

    def active_with_two() -> bool:
        shown = shown_cluster(cli, cluster["Id"])
        assert shown["Status"] != "Error", shown
        return bool(shown["Status"] == "Active"
                    and f"{templates.datanode['Name']}:2" in shown["Node groups"])
    wait_until(active_with_two, timeout=300, poll=2)


def put_binary(binary_root: Path, project: str, name: str, data: bytes) -> str:
    folder = binary_root / project_folder_name(project)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)
    return f"file://{folder / name}"


def test_job_binary_data_source_job_template_and_job_execute_until_it_ends(
        cli: Cli, cluster: dict[str, Any], binary_root: Path) -> None:
    url = put_binary(binary_root, cli.project, unique("echo") + ".sh",
                     b'echo "from the cli: $*"\n')
    binary = cli.json("dataprocessing", "job", "binary", "create", "--name",
                      unique("echo.sh"), "--url", url, "--description", "echoes")
    assert binary["Url"] == url
    assert cli.json("dataprocessing", "job", "binary", "show", binary["Id"])["Name"] == \
        binary["Name"]
    source = cli.json("dataprocessing", "data", "source", "create", unique("input"),
                      "--type", "hdfs", "--url", "/user/cli/input")
    assert source["Type"] == "hdfs"
    assert cli.json("dataprocessing", "data", "source", "show", source["Id"])["Url"] == \
        "/user/cli/input"
    template = cli.json("dataprocessing", "job", "template", "create", "--name",
                        unique("echo"), "--type", "Shell", "--mains", binary["Id"])
    assert template["Type"] == "Shell"
    assert cli.json("dataprocessing", "job", "template", "show", template["Id"])["Mains"] \
        == f"{binary['Name']}:{binary['Id']}"

    job = cli.json("dataprocessing", "job", "execute", "--job-template", template["Id"],
                   "--cluster", cluster["Id"], "--args", "one", "two")
    assert job["Status"] in ("PENDING", "RUNNING", "SUCCEEDED"), job
    deadline = time.monotonic() + 120
    while True:
        shown = cli.json("dataprocessing", "job", "show", job["Id"])
        if shown["Status"] in FINAL_JOB:
            break
        assert time.monotonic() < deadline, shown
        time.sleep(1)
    assert shown["Status"] == "SUCCEEDED", shown
    assert shown["Cluster id"] == cluster["Id"]


def test_cluster_delete_removes_it(cli: Cli, cluster: dict[str, Any]) -> None:
    """Last: the other tests of the module use the cluster."""
    out = cli.run("dataprocessing", "cluster", "delete", cluster["Id"], "--wait")
    assert "has been removed successfully" in out
    listed = cli.json("dataprocessing", "cluster", "list")
    assert cluster["Id"] not in [c["Id"] for c in listed]
