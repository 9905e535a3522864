"""The image registry (``/v2/images``) through the real python-saharaclient over HTTP, on
every store: registering, tagging and unregistering the infrastructure's images, who may do
it, and templates and clusters that name an image Sahara may not use.

Each test serves an image catalogue of its own (fresh ids), since the registry is the
store's and the store is shared by the session's tests.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from saharaclient.api.base import APIException

from sahara_es.infra.base import Image
from sahara_es.store import Store
from tests.apiserver import RunningApi, own, running_api
from tests.integration.test_saharaclient import client_for, unique

PLUGIN = "spark"
FLAVOR = "local.small"
SAHARA_IMAGE_KEYS = {"id", "name", "status", "username", "description", "tags", "metadata",
                     "minDisk", "minRam", "progress", "created", "updated"}


@dataclass
class Cloud:
    api: RunningApi
    shared: Image
    """One of the cloud's images: every project sees it, admins register it."""
    private: Image
    """An image of the ``owner`` project's own."""
    owner: str

    def admin(self) -> Any:
        return client_for(self.api, self.api.token(unique("admin"), "admin"))

    def project(self, project: str | None = None) -> Any:
        return client_for(self.api, self.api.token(project or unique("project")))


@pytest.fixture
def cloud(store: Store) -> Iterator[Cloud]:
    owner = unique("owner")
    shared = Image(id=str(uuid.uuid4()), name=unique("ubuntu-spark"), login_user="ubuntu",
                   created_at="2026-01-02T03:04:05+00:00", min_disk_gb=10, min_ram_mb=1024)
    private = Image(id=str(uuid.uuid4()), name=unique("own"), login_user="debian",
                    created_at="2026-01-02T03:04:05+00:00", project_id=owner)
    with running_api(store, images={i.id: i for i in (shared, private)}) as api:
        yield Cloud(api, shared, private, owner)


def refused(call: Any, *args: Any, **kwargs: Any) -> APIException:
    with pytest.raises(APIException) as caught:
        call(*args, **kwargs)
    return caught.value


def spark_version(client: Any) -> str:
    version: str = client.plugins.get(PLUGIN).versions[0]
    return version


def test_an_admin_registers_tags_and_unregisters_an_image(cloud: Cloud) -> None:
    admin, image_id = cloud.admin(), cloud.shared.id
    assert admin.images.list() == []  # nothing registered: Sahara lists registered images
    unregistered = admin.images.get(image_id)  # shown, for the image API's look-ups
    assert (unregistered.username, unregistered.tags, unregistered.metadata) == ("", [], {})

    registered = admin.images.update_image(image_id, "ubuntu", "Ubuntu with Spark").image
    assert registered["username"] == "ubuntu"
    assert registered["description"] == "Ubuntu with Spark"
    assert set(registered) >= SAHARA_IMAGE_KEYS
    shown = admin.images.get(image_id)
    assert (shown.name, shown.status, shown.minDisk, shown.minRam, shown.progress) == (
        cloud.shared.name, "ACTIVE", 10, 1024, 100)
    assert shown.metadata == {"_sahara_username": "ubuntu",
                              "_sahara_description": "Ubuntu with Spark"}
    assert [i.id for i in admin.images.list()] == [image_id]

    tagged = admin.images.update_tags(image_id, ["spark", "3.5", "extra"])
    assert tagged.tags == ["spark", "3.5", "extra"] and tagged.image["tags"] == tagged.tags
    assert admin.images.get(image_id).metadata["_sahara_tag_extra"] is True
    assert admin.images.get_tags(image_id).tags == ["spark", "3.5", "extra"]
    assert [i.id for i in admin.images.list({"tags": ["spark", "3.5"]})] == [image_id]
    assert admin.images.list({"tags": ["spark", "hadoop"]}) == []
    assert [i.id for i in admin.images.list({"name": cloud.shared.name[:8]})] == [image_id]
    assert admin.images.list({"username": "root"}) == []

    assert admin.images.update_tags(image_id, ["spark", "3.5"]).tags == ["spark", "3.5"]
    admin.images.delete_tags(image_id)
    assert admin.images.get(image_id).tags == []

    again = admin.images.update_image(image_id, "debian").image  # a new registration
    assert (again["username"], again["description"]) == ("debian", "")

    admin.images.update_tags(image_id, ["spark"])
    admin.images.unregister_image(image_id)
    assert admin.images.list() == []
    assert admin.images.get(image_id).username == ""
    assert admin.images.get_tags(image_id).tags == []  # its tags went with it


def test_a_project_sees_the_clouds_registered_images_but_only_an_admin_changes_them(
        cloud: Cloud) -> None:
    project, image_id = cloud.project(), cloud.shared.id
    assert refused(project.images.update_image, image_id, "ubuntu").error_code == 403
    cloud.admin().images.update_image(image_id, "ubuntu")
    assert [i.id for i in project.images.list()] == [image_id]
    assert project.images.get(image_id).username == "ubuntu"
    assert refused(project.images.update_tags, image_id, ["spark"]).error_code == 403
    assert refused(project.images.delete_tags, image_id).error_code == 403
    assert refused(project.images.unregister_image, image_id).error_code == 403
    assert project.images.get(image_id).username == "ubuntu"


def test_a_project_registers_its_own_image_which_other_projects_cannot_see(
        cloud: Cloud) -> None:
    owner, other, image_id = cloud.project(cloud.owner), cloud.project(), cloud.private.id
    assert owner.images.update_image(image_id, "debian").image["username"] == "debian"
    assert owner.images.update_tags(image_id, ["spark"]).tags == ["spark"]
    assert [i.id for i in owner.images.list()] == [image_id]
    assert other.images.list() == []
    assert refused(other.images.get, image_id).error_code == 404
    assert refused(other.images.update_image, image_id, "root").error_code == 404
    assert refused(other.images.unregister_image, image_id).error_code == 404
    assert [i.id for i in cloud.admin().images.list()] == [image_id]


def test_an_unknown_image_is_a_404_and_bad_registrations_and_tags_are_400s(
        cloud: Cloud) -> None:
    admin, image_id = cloud.admin(), cloud.shared.id
    assert refused(admin.images.get, str(uuid.uuid4())).error_code == 404
    assert refused(admin.images.update_image, str(uuid.uuid4()), "ubuntu").error_code == 404
    assert refused(admin.images.update_image, image_id, "root; rm -rf /").error_code == 400
    assert refused(admin.images.update_tags, image_id, ["two words"]).error_code == 400
    assert refused(admin.images.update_tags, image_id, [f"t{i}" for i in range(101)]
                   ).error_code == 400
    assert refused(admin.images._post, f"/images/{image_id}", {"description": "no user"}
                   ).error_code == 400
    assert admin.images.list() == [] and admin.images.get_tags(image_id).tags == []


def test_templates_and_clusters_naming_an_unknown_or_unregistered_image_are_refused(
        cloud: Cloud) -> None:
    client = cloud.project()
    version = spark_version(client)
    unknown, unregistered = str(uuid.uuid4()), cloud.shared.id

    for image_id, says in ((unknown, "does not exist"), (unregistered, "is not registered")):
        error = refused(client.node_group_templates.create, unique("worker"), PLUGIN, version,
                        FLAVOR, node_processes=["worker"], image_id=image_id)
        assert error.error_code == 400 and says in error.error_message
        error = refused(client.cluster_templates.create, unique("spark"), PLUGIN, version,
                        default_image_id=image_id, node_groups=[
                            {"name": "master", "count": 1, "flavor_id": FLAVOR,
                             "node_processes": ["master"]}])
        assert error.error_code == 400 and "default_image_id" in error.error_message
        assert says in error.error_message
        error = refused(client.clusters.create, unique("cluster"), PLUGIN, version,
                        default_image_id=image_id, node_groups=[
                            {"name": "master", "count": 1, "flavor_id": FLAVOR,
                             "node_processes": ["master"], "image_id": None},
                            {"name": "worker", "count": 1, "flavor_id": FLAVOR,
                             "node_processes": ["worker"]}])
        assert error.error_code == 400 and says in error.error_message
        error = refused(client.clusters.create, unique("cluster"), PLUGIN, version,
                        node_groups=[
                            {"name": "master", "count": 1, "flavor_id": FLAVOR,
                             "node_processes": ["master"], "image_id": image_id},
                            {"name": "worker", "count": 1, "flavor_id": FLAVOR,
                             "node_processes": ["worker"]}])
        assert error.error_code == 400 and "node group 'master'" in error.error_message
    assert own(client.node_group_templates.list()) == []
    assert own(client.cluster_templates.list()) == []
    assert own(client.clusters.list()) == []


def test_a_cluster_whose_image_lacks_the_plugins_required_tags_is_refused(
        cloud: Cloud) -> None:
    admin, client, image_id = cloud.admin(), cloud.project(), cloud.shared.id
    version = spark_version(client)
    required = client.plugins.get_version_details(PLUGIN, version).required_image_tags
    assert required == [PLUGIN, version]
    admin.images.update_image(image_id, "ubuntu")
    admin.images.update_tags(image_id, [PLUGIN])
    master = client.node_group_templates.create(unique("master"), PLUGIN, version, FLAVOR,
                                                node_processes=["master"])
    worker = client.node_group_templates.create(unique("worker"), PLUGIN, version, FLAVOR,
                                                node_processes=["worker"])
    groups = [{"name": "master", "count": 1, "node_group_template_id": master.id},
              {"name": "worker", "count": 1, "node_group_template_id": worker.id}]

    error = refused(client.clusters.create, unique("cluster"), PLUGIN, version,
                    default_image_id=image_id, node_groups=groups)
    assert error.error_code == 400
    assert "lacks the tags the plugin requires" in error.error_message
    assert version in error.error_message
    assert own(client.clusters.list()) == []

    admin.images.update_tags(image_id, [PLUGIN, version])
    cluster = client.clusters.create(unique("cluster"), PLUGIN, version,
                                     default_image_id=image_id, node_groups=groups)
    assert client.clusters.get(cluster.id).default_image_id == image_id
    template = client.node_group_templates.create(unique("imaged"), PLUGIN, version, FLAVOR,
                                                  node_processes=["worker"], image_id=image_id)
    assert template.image_id == image_id


def test_templates_and_clusters_without_an_image_stay_valid(cloud: Cloud) -> None:
    """Those made before images were checked name none: the provider's default is used."""
    client = cloud.project()
    version = spark_version(client)
    cluster = client.clusters.create(unique("cluster"), PLUGIN, version, node_groups=[
        {"name": "master", "count": 1, "flavor_id": FLAVOR, "node_processes": ["master"]},
        {"name": "worker", "count": 1, "flavor_id": FLAVOR, "node_processes": ["worker"]}])
    assert cluster.status == "Validating"
