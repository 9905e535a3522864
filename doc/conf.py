"""Sphinx configuration for the sahara-es documentation.

``sphinx-build -W -b html doc doc/_build/html`` (``tools/test`` runs it, warnings as errors).
The API reference is rendered from the OpenAPI document the service serves, generated here
at build time; the CLI reference from the ``sahara-es`` command itself.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

project = "sahara-es"
copyright = "sahara-es contributors"
extensions = ["sphinx_click", "sphinxcontrib.openapi"]
master_doc = "index"
exclude_patterns = ["_build", "_generated/*.json"]
html_theme = "alabaster"
suppress_warnings = ["misc.highlighting_failure"]


def _write_openapi(folder: Path) -> None:
    """The document ``GET /v2/openapi.json`` serves, from an app on a scratch store."""
    from sahara_es.api import openapi
    from sahara_es.api.app import ApiConfig, create_app, stop_app
    from sahara_es.store import open_store

    with tempfile.TemporaryDirectory() as scratch:
        store = open_store(f"sqlite:///{scratch}/store.db", upgrade=True)
        app = create_app(ApiConfig(auth="noauth", data_dir=scratch), store=store)
        try:
            document = openapi.build(app)
        finally:
            stop_app(app)
            store.close()
    folder.mkdir(exist_ok=True)
    (folder / "openapi.json").write_text(json.dumps(document, indent=1, sort_keys=True))


_write_openapi(Path(__file__).parent / "_generated")
