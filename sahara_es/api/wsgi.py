"""The WSGI application for a server such as gunicorn (``sahara_es.api.wsgi:application``),
configured from the environment:

``SAHARA_ES_STORE`` (store URL; default: SQLite in the state folder),
``SAHARA_ES_DATA_DIR`` (the state folder; default ``$XDG_DATA_HOME/sahara-es``),
``SAHARA_ES_AUTH`` (token | keystone | noauth), ``SAHARA_ES_PLUGINS`` (comma-separated),
``SAHARA_ES_PROJECTOR`` (0 to leave read models to another process),
``SAHARA_ES_API_READS`` (memory | store: where GETs read, doc/api-processes.rst; memory),
``SAHARA_ES_MAX_BODY_BYTES`` and ``SAHARA_ES_MAX_CONFIG_BYTES`` (request limits).
"""

from __future__ import annotations

import os

from flask import Flask

from sahara_es.api import compose
from sahara_es.api.app import ApiConfig, default_data_dir
from sahara_es.api.limits import MAX_BODY_BYTES, MAX_CONFIG_BYTES


def config_from_env() -> ApiConfig:
    plugins = os.environ.get("SAHARA_ES_PLUGINS")
    data_dir = os.environ.get("SAHARA_ES_DATA_DIR") or str(default_data_dir())
    return ApiConfig(
        store_url=os.environ.get("SAHARA_ES_STORE", f"sqlite:///{data_dir}/store.db"),
        data_dir=data_dir,
        max_body_bytes=int(os.environ.get("SAHARA_ES_MAX_BODY_BYTES", MAX_BODY_BYTES)),
        max_config_bytes=int(os.environ.get("SAHARA_ES_MAX_CONFIG_BYTES", MAX_CONFIG_BYTES)),
        auth=os.environ.get("SAHARA_ES_AUTH", "token"),
        plugins=[p.strip() for p in plugins.split(",")] if plugins else None,
        run_projector=os.environ.get("SAHARA_ES_PROJECTOR", "1") != "0",
        reads=os.environ.get("SAHARA_ES_API_READS", "memory"),
        engines=True,
    )


def _application() -> Flask:
    # the store at SAHARA_ES_STORE, its schema applied, and its quota claims
    return compose.app_for(config_from_env(), quota=compose.STORE_QUOTAS)


application = _application()
