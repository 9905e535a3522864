"""The WSGI application for a server such as gunicorn (``sahara_es.api.wsgi:application``),
configured from the environment:

``SAHARA_ES_STORE`` (store URL), ``SAHARA_ES_AUTH`` (token | keystone | noauth),
``SAHARA_ES_PLUGINS`` (comma-separated), ``SAHARA_ES_PROJECTOR`` (0 to leave read models to
another process).
"""

from __future__ import annotations

import os

from flask import Flask

from sahara_es.api.app import ApiConfig, create_app


def config_from_env() -> ApiConfig:
    from sahara_es.store import DEFAULT_STORE_URL

    plugins = os.environ.get("SAHARA_ES_PLUGINS")
    return ApiConfig(
        store_url=os.environ.get("SAHARA_ES_STORE", DEFAULT_STORE_URL),
        auth=os.environ.get("SAHARA_ES_AUTH", "token"),
        plugins=[p.strip() for p in plugins.split(",")] if plugins else None,
        run_projector=os.environ.get("SAHARA_ES_PROJECTOR", "1") != "0",
    )


def _application() -> Flask:
    from sahara_es.infra.quotas import Quotas
    from sahara_es.plugins.provisioner import WorkflowProvisioner
    from sahara_es.plugins.runtime import QuotaGate
    from sahara_es.store import open_store

    config = config_from_env()
    store = open_store(config.store_url, upgrade=True)
    return create_app(config, store=store, provisioner=WorkflowProvisioner(store),
                      quota=QuotaGate(Quotas(store)))


application = _application()
