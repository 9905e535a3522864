"""The v2 API for a WSGI server such as gunicorn (``sahara_es.cli.wsgi:application``; what
``sahara-es api --workers N`` runs), configured as the ``sahara-es`` command is: the
configuration files named by ``$SAHARA_ES_CONFIG_FILES`` (else oslo's default locations),
then the ``SAHARA_ES_*`` environment variables (doc/configuration.rst)."""

from __future__ import annotations

from flask import Flask

from sahara_es.api.compose import STORE_QUOTAS, app_for
from sahara_es.cli.bus import announced
from sahara_es.cli.config import load_for_workers
from sahara_es.cli.context import Context
from sahara_es.cli.settings import api_config
from sahara_es.store import open_store


def _application() -> Flask:
    context = Context(load_for_workers())
    state = context.use_data_dir()
    store, _ = announced(context.conf, open_store(context.url, upgrade=True))
    return app_for(api_config(context.conf, store_url=context.url, data_dir=state),
                   store=store, quota=STORE_QUOTAS)


application = _application()
