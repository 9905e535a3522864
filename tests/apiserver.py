"""A real HTTP server running the v2 API in this process, for tests that go through HTTP
(python-saharaclient, schemathesis, plain requests)."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

from flask import Flask
from werkzeug.serving import make_server

from sahara_es.api.app import ApiConfig, stop_app
from sahara_es.api.compose import app_for
from sahara_es.commands import tokens
from sahara_es.infra.base import Image
from sahara_es.infra.local import NODE_IMAGE as LOCAL_IMAGE
from sahara_es.store import Store


@dataclass
class RunningApi:
    app: Flask
    url: str
    """``http://127.0.0.1:<port>/v2``"""
    store: Store

    def token(self, project: str, *roles: str) -> str:
        return tokens.issue(self.store, project, roles=list(roles)).token

    def headers(self, token: str) -> dict[str, str]:
        return {"X-Auth-Token": token}


@contextmanager
def running_api(store: Store, *, auth: str = "token",
                plugins: list[str] | None = None, app: Flask | None = None,
                images: Mapping[str, Image] | None = None) -> Iterator[RunningApi]:
    """The v2 API served over HTTP; ``app`` one already built (with engines behind it, say)
    instead of a recording-only one of ``auth`` and ``plugins``; ``images`` an image
    catalogue instead of the local provider's."""
    if app is None:
        config = ApiConfig(auth=auth, plugins=plugins)
        if images is not None:
            config = replace(config, images=images)
        app = app_for(config, store=store)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield RunningApi(app, f"http://127.0.0.1:{server.port}/v2", store)
    finally:
        server.shutdown()
        server.server_close()
        stop_app(app)


def known_parameters(endpoint: str, existing: dict[str, str]) -> dict[str, str] | None:
    """Path parameters naming things that exist, for the v2 endpoint (``area.operation``,
    as in ``sahara_es.api.openapi``); ``existing`` holds a made id of each kind
    (node_group_template, cluster_template, cluster, data_source, job_binary, job_template).
    None if it has none or would remove them (deletes are tried with generated ids only)."""
    area, name = endpoint.split(".")
    if name.startswith(("delete_", "list_", "create_")):
        return None
    if area == "plugins":
        return {"name": "fake", "version": "0.1"} if "plugin" in name else None
    if endpoint == "edp.job_config_hints":
        return {"job_type": "Shell"}
    if area == "images":
        return {"image_id": LOCAL_IMAGE.id}
    for kind, parameter in (("node_group_template", "template_id"),
                            ("cluster_template", "template_id"), ("cluster", "cluster_id"),
                            ("data_source", "resource_id"), ("job_binary", "resource_id"),
                            ("job_template", "resource_id")):
        if name.endswith(kind) or name.startswith(f"{kind}_") or f"_{kind}_" in name:
            return {parameter: existing[kind]}
    return None


def own(listed: Iterable[Any]) -> list[Any]:
    """The items of a saharaclient list that are not public: what the caller's own project
    made (other tests' public resources share the store)."""
    return [item for item in listed if not item.is_public]
