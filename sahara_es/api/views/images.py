"""``/v2/images``: the image registry, Sahara's view of the infrastructure's images.

Statuses and bodies are Sahara v2's: a list of the registered images (paged as the other
lists, when asked to), an image in ``image``, a registration answered with 202, unregistering
and removing all tags with 204. An image that is not registered is shown with an empty
``username`` (Sahara answered 400 ``IMAGE_NOT_REGISTERED``): with one endpoint serving every
service (``admin_token``), ``openstack dataprocessing image register`` looks the image up
through the image API at this same URL, and must find it. Setting the tags answers 200 with
the image under ``image``, as Sahara did, and its keys at the top level too, which
python-saharaclient's v2 ``update_tags`` (and so ``openstack dataprocessing image tags``)
reads; an image's tags are ``{"tags": [...]}``.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, request

from sahara_es.api import schemas
from sahara_es.api.pagination import page
from sahara_es.api.service import caller, service
from sahara_es.api.views.common import answer, body, no_content, no_params
from sahara_es.commands import images
from sahara_es.events.images import Registration
from sahara_es.infra.base import Image

blueprint = Blueprint("images", __name__)

LIST_FILTERS = ("name", "tags", "username")
IMAGE_SORT = ("id", "name", "created", "updated")


def image_view(image: Image, state: Registration) -> dict[str, Any]:
    """The image as Sahara showed it: Glance's image with the properties Sahara kept on it
    (``_sahara_username``, ``_sahara_description``, ``_sahara_tag_<tag>``) in ``metadata``."""
    metadata: dict[str, Any] = {}
    if state.username:
        metadata["_sahara_username"] = state.username
    if state.description:
        metadata["_sahara_description"] = state.description
    metadata.update({f"_sahara_tag_{tag}": True for tag in state.tags})
    return {"id": image.id, "name": image.name, "status": "ACTIVE",
            "username": state.username, "description": state.description,
            "tags": list(state.tags), "metadata": metadata,
            "minDisk": image.min_disk_gb, "minRam": image.min_ram_mb, "progress": 100,
            "created": image.created_at, "updated": state.updated_at or image.created_at,
            "OS-EXT-IMG-SIZE:size": image.size_bytes}


def _catalogue() -> dict[str, Image]:
    return dict(service().catalog.images)


def _shown(image_id: str, state: Registration) -> dict[str, Any]:
    return image_view(_catalogue()[image_id], state)


@blueprint.get("/images")
def list_images() -> Response:
    catalogue = _catalogue()
    found = images.registered(service().store, catalogue, caller(),
                              name=request.args.get("name"),
                              tags=request.args.getlist("tags"),
                              username=request.args.get("username"))
    docs = sorted((image_view(catalogue[image.id], state) for image, state in found),
                  key=lambda doc: doc["id"])
    return answer(None, page(docs, envelope="images", sort_fields=IMAGE_SORT,
                             extra_params=LIST_FILTERS))


@blueprint.get("/images/<image_id>")
def show_image(image_id: str) -> Response:
    no_params()
    images.offered(_catalogue(), image_id, caller())
    return answer("image", _shown(image_id, images.registration(service().store, image_id)))


@blueprint.post("/images/<image_id>")
def register_image(image_id: str) -> Response:
    no_params()
    images.offered(_catalogue(), image_id, caller())  # a 404 before the body's 400s
    fields = body(schemas.ImageRegister)
    state = images.register(service().store, _catalogue(), caller(), image_id,
                            fields["username"], fields.get("description") or "")
    return answer("image", _shown(image_id, state), 202)


@blueprint.delete("/images/<image_id>")
def unregister_image(image_id: str) -> Response:
    no_params()
    images.unregister(service().store, _catalogue(), caller(), image_id)
    return no_content()


@blueprint.get("/images/<image_id>/tags")
def image_tags(image_id: str) -> Response:
    no_params()
    images.offered(_catalogue(), image_id, caller())
    return answer(None, {"tags": images.registration(service().store, image_id).tags})


@blueprint.put("/images/<image_id>/tags")
def set_image_tags(image_id: str) -> Response:
    no_params()
    images.offered(_catalogue(), image_id, caller())
    tags = body(schemas.ImageTags)["tags"]
    state = images.set_tags(service().store, _catalogue(), caller(), image_id, tags)
    shown = _shown(image_id, state)
    return answer(None, {"image": shown, **shown})


@blueprint.delete("/images/<image_id>/tags")
def remove_image_tags(image_id: str) -> Response:
    no_params()
    images.remove_tags(service().store, _catalogue(), caller(), image_id)
    return no_content()
