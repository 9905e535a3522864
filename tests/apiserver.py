"""A real HTTP server running the v2 API in this process, for tests that go through HTTP
(python-saharaclient, schemathesis, plain requests)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from flask import Flask
from werkzeug.serving import make_server

from sahara_es.api.app import ApiConfig, create_app, stop_app
from sahara_es.commands import tokens
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
                plugins: list[str] | None = None) -> Iterator[RunningApi]:
    app = create_app(ApiConfig(auth=auth, plugins=plugins), store=store)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield RunningApi(app, f"http://127.0.0.1:{server.port}/v2", store)
    finally:
        server.shutdown()
        server.server_close()
        stop_app(app)
