"""``create_app``: the v2 API's composition root, where the store, plugins, auth mode and
quota are chosen."""

from __future__ import annotations

import logging
import os
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import Flask, g, request

from sahara_es.api import auth, errors, openapi, reads, versions
from sahara_es.api.limits import MAX_BODY_BYTES, MAX_CONFIG_BYTES, MAX_JSON_DEPTH, Limits
from sahara_es.api.reads import DEFAULT_AFFINITY_WINDOW
from sahara_es.api.service import Service
from sahara_es.api.views import clusters, edp, health, images, plugins, templates
from sahara_es.commands.catalog import NoQuota, Quota
from sahara_es.infra.base import Flavor, Image
from sahara_es.infra.local import FLAVORS as LOCAL_FLAVORS
from sahara_es.infra.local import IMAGES as LOCAL_IMAGES
from sahara_es.plugins.catalog import PluginCatalog, load_plugins
from sahara_es.projections import RESOURCE_PROJECTIONS, Projector
from sahara_es.projections.memory import (
    DEFAULT_MAX_LAG,
    DEFAULT_POLL,
    EventSink,
    FeedTail,
    MemoryReads,
)
from sahara_es.store import Store, open_store

DEFAULT_PORT = 8386
log = logging.getLogger(__name__)
_REQUEST_ID = re.compile(r"^req-[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                         r"[0-9a-fA-F]{12}$")


@dataclass(frozen=True, kw_only=True)
class ApiConfig:
    store_url: str = ""
    auth: str = "token"
    """``token`` (built-in tokens, the default), ``keystone`` or ``noauth`` (development)."""
    keystone: dict[str, Any] = field(default_factory=dict)
    """keystonemiddleware ``auth_token`` options (``www_authenticate_uri``, ``auth_url``...)."""
    plugins: list[str] | None = None
    """Plugins to enable; when None, every installed one but the opt-in ones (fake)."""
    flavors: Mapping[str, Flavor] = field(default_factory=lambda: dict(LOCAL_FLAVORS))
    """The infrastructure's flavors (the local provider's unless another provider is used)."""
    images: Mapping[str, Image] = field(default_factory=lambda: dict(LOCAL_IMAGES))
    """The infrastructure's image catalogue, by id (the local provider's unless another
    provider is used): what ``/v2/images`` registers and templates and clusters name."""
    run_projector: bool = True
    """Keep read models up to date from this process (one process at a time does, by lease)."""
    engines: bool = False
    """Engines share the store: their handoff starts the workflows cluster commands ask for
    (``engine/handoff.py``). False (tests, development): cluster requests are only recorded
    (and marked so that no engine acts on them), and a deletion completes at once."""
    data_dir: str = ""
    """The service's state folder (the CLI's data dir): file:// job binaries are served from
    its ``job-binaries/``. Default: ``$XDG_DATA_HOME/sahara-es``."""
    job_binary_root: str = ""
    """Where file:// job binaries are served from, if not ``<data_dir>/job-binaries``."""
    max_body_bytes: int = MAX_BODY_BYTES
    """A larger request body is refused with 413 before it is read."""
    max_json_depth: int = MAX_JSON_DEPTH
    """Arrays and objects nested deeper in a body are refused with 400."""
    max_config_bytes: int = MAX_CONFIG_BYTES
    """Each free-form config (``node_configs``, ``cluster_configs``, ``job_configs``...),
    serialized, at most this size (400 otherwise)."""
    reads: str = "store"
    """``memory``: GETs read this process's read models in memory, fed by the feed
    (doc/api-processes.rst), what every served entry point chooses (``sahara-es api``,
    ``sahara_es.api.wsgi``); ``store``: every GET reads the stored read models, each row
    brought up to its stream, so a write made behind the API's back (a test's, an engine's
    in the same process) is shown at once, at the cost of store requests on every GET."""
    max_read_lag: float = DEFAULT_MAX_LAG
    """Seconds the memory's tail may go without reaching the feed's end before GETs read
    the store instead."""
    read_poll: float = DEFAULT_POLL
    """Seconds between the tail's reads of the feed when nothing wakes it."""
    affinity_window: float = DEFAULT_AFFINITY_WINDOW
    """A caller not answered by this process for this long may have been answered by
    another: its next request waits for the tail to reach the feed's end."""


def default_data_dir() -> Path:
    """The service's default state folder, ``$XDG_DATA_HOME/sahara-es``, for the API and
    the CLI alike. An empty or relative ``XDG_DATA_HOME`` is ignored, as the XDG base
    directory specification says: ``~/.local/share`` then."""
    data_home = Path(os.environ.get("XDG_DATA_HOME") or "")
    if not data_home.is_absolute():
        data_home = Path.home() / ".local" / "share"
    return data_home / "sahara-es"


def private_folder(path: Path) -> Path:
    """``path``, made with its missing parents readable by the service's user only (0700);
    a folder that exists already is left as its operator made it."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    for folder in reversed(missing):
        folder.mkdir(mode=0o700, exist_ok=True)
        folder.chmod(0o700)  # mkdir's mode is masked by the umask
    return path


_BLUEPRINTS = (plugins.blueprint, templates.blueprint, clusters.blueprint, edp.blueprint,
               images.blueprint)


def create_app(config: ApiConfig, *, store: Store | None = None,
               quota: Quota | None = None) -> Flask:
    """The API on ``store``; ``quota`` is claimed by cluster creates and scales. Commands
    only record: engines carry them out (``config.engines``)."""
    app = Flask("sahara_es.api")
    app.json.sort_keys = False  # type: ignore[attr-defined]
    store = store or open_store(config.store_url, upgrade=True)
    enabled = load_plugins(config.plugins)
    projector = None
    if config.run_projector:
        projector = Projector(store, [p() for p in RESOURCE_PROJECTIONS.values()],
                              owner=f"api-{os.getpid()}-{uuid.uuid4().hex[:6]}").start()
    catalog = PluginCatalog(enabled, dict(config.flavors), store=store)
    catalog.images = dict(config.images)
    memory, tail = None, None
    if config.reads == "memory":
        memory = MemoryReads(store, [p() for p in RESOURCE_PROJECTIONS.values()])
        tail = FeedTail(memory, memory.load(), poll=config.read_poll)
        tail.run_pass()  # caught up before the first request
        tail.start()
    elif config.reads != "store":
        raise ValueError(f"reads: {config.reads!r} is neither memory nor store")
    app.extensions["sahara_es"] = Service(
        store=store, plugins=enabled, catalog=catalog,
        quota=quota or NoQuota(), engines=config.engines, projector=projector,
        memory=memory, tail=tail, max_read_lag=config.max_read_lag)
    data_dir = Path(config.data_dir) if config.data_dir else default_data_dir()
    binaries = Path(config.job_binary_root) if config.job_binary_root \
        else data_dir / "job-binaries"
    try:
        private_folder(binaries)
    except OSError as error:  # the API still serves all else; binaries' data is then a 404
        log.warning("the job binary folder %s cannot be made: %s", binaries, error)
    app.config["JOB_BINARY_ROOT"] = str(binaries)
    app.config["MAX_CONTENT_LENGTH"] = config.max_body_bytes
    app.extensions["sahara_es.limits"] = Limits(max_body_bytes=config.max_body_bytes,
                                                max_json_depth=config.max_json_depth,
                                                max_config_bytes=config.max_config_bytes)

    @app.before_request
    def request_id() -> None:
        # a caller's own request id is kept only in oslo's form: it goes into logs and events
        given = request.headers.get("X-Openstack-Request-Id", "")
        g.request_id = given if _REQUEST_ID.fullmatch(given) else f"req-{uuid.uuid4()}"

    errors.init_app(app)
    versions.init_app(app)

    @app.url_value_preprocessor
    def project_in_url(endpoint: str | None, values: dict[str, Any] | None) -> None:
        g.url_project = (values or {}).pop("project_id", None)

    auth.init_app(app, store, config.auth, config.keystone)
    reads.init_app(app, affinity_window=config.affinity_window)
    app.register_blueprint(health.blueprint)
    for blueprint in _BLUEPRINTS:
        app.register_blueprint(blueprint, url_prefix="/v2")
        app.register_blueprint(blueprint, url_prefix="/v2/<project_id>",
                               name=f"{blueprint.name}_in_project")
    openapi.init_app(app)
    return app


def event_sink(app: Flask) -> EventSink | None:
    """Where events delivered to this process by other means than its feed tail (a message
    bus) are pushed, so that its GETs show them at once; None when its GETs read the store."""
    service: Service = app.extensions["sahara_es"]
    return service.memory


def stop_app(app: Flask) -> None:
    service: Service = app.extensions["sahara_es"]
    if service.tail is not None:
        service.tail.stop()
    if service.projector is not None:
        service.projector.stop()
        service.projector.release()
