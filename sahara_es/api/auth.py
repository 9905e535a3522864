"""Who is calling: three modes, chosen by configuration.

- ``token`` (the default): ``X-Auth-Token`` is a token made by ``sahara-es token create``,
  checked against its stored hash (cached for a few seconds, so a revocation takes effect
  within ``TOKEN_CACHE_SECONDS``).
- ``keystone``: keystonemiddleware's ``auth_token`` validates the token with Keystone and
  passes the identity on in ``X-Project-Id`` / ``X-Roles`` / ``X-User-Id`` headers.
- ``noauth``: for development only, and only when configured: the project is taken from
  ``X-Project-Id`` (or the URL), roles from ``X-Roles``.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from flask import Flask, g, request

from sahara_es.api.errors import ApiError
from sahara_es.commands import tokens
from sahara_es.commands.caller import Caller
from sahara_es.store import Store

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

MODES = ("token", "keystone", "noauth")
_PROJECT = re.compile(r"[^\x00-\x1f\x7f]{1,255}")
TOKEN_CACHE_SECONDS = 5.0
PUBLIC_PATHS = ("/", "/healthz", "/v2/openapi.json")


class TokenCache:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._cache: dict[str, tuple[float, Caller | None]] = {}
        self._lock = threading.Lock()

    def caller(self, token: str) -> Caller | None:
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(token)
        if hit is not None and now - hit[0] < TOKEN_CACHE_SECONDS:
            return hit[1]
        caller = tokens.authenticate(self.store, token)
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[token] = (now, caller)
        return caller


def unauthorized(detail: str) -> ApiError:
    return ApiError(401, "unauthorized", "Unauthorized", detail, name="UNAUTHORIZED",
                    headers={"WWW-Authenticate": 'Token realm="sahara-es"'})


def _roles(header: str | None) -> frozenset[str]:
    return frozenset(r.strip().lower() for r in (header or "").split(",") if r.strip())


def _keystone_in_front(wsgi_app: WSGIApplication, keystone: dict[str, Any]) -> WSGIApplication:
    """keystonemiddleware's ``auth_token`` in front of every path but the public ones (a
    load balancer's health check carries no token). ``keystone``: its options, or
    ``oslo_config_config``, a ConfigOpts whose ``[keystone_authtoken]`` it reads."""
    from keystonemiddleware import auth_token  # type: ignore[import-untyped]

    checked = auth_token.AuthProtocol(wsgi_app, dict(keystone))

    def dispatch(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "") in PUBLIC_PATHS:
            return wsgi_app(environ, start_response)
        answer: Iterable[bytes] = checked(environ, start_response)
        return answer

    return dispatch


def init_app(app: Flask, store: Store, mode: str, keystone: dict[str, Any] | None = None) -> None:
    if mode not in MODES:
        raise ValueError(f"auth mode {mode!r}: choose one of {', '.join(MODES)}")
    cache = TokenCache(store)
    if mode == "keystone":
        app.wsgi_app = _keystone_in_front(  # type: ignore[method-assign,assignment]
            app.wsgi_app, keystone or {})

    @app.before_request
    def identify() -> None:
        if request.path in PUBLIC_PATHS or request.method == "OPTIONS":
            g.caller = None
            return
        address = request.remote_addr
        url_project = g.get("url_project")
        if mode == "token":
            token = request.headers.get("X-Auth-Token")
            if not token:
                raise unauthorized("no X-Auth-Token header: make a token with"
                                   " `sahara-es token create --project P`")
            caller = cache.caller(token)
            if caller is None:
                raise unauthorized("the token is unknown or revoked")
        elif mode == "keystone":
            if request.headers.get("X-Identity-Status") != "Confirmed":
                raise unauthorized("Keystone did not confirm the token")
            caller = Caller(project_id=request.headers.get("X-Project-Id", ""),
                            user=request.headers.get("X-User-Id"),
                            roles=_roles(request.headers.get("X-Roles")))
        else:
            project = request.headers.get("X-Project-Id") or url_project or "default"
            if not _PROJECT.fullmatch(project):
                raise ApiError(400, "invalid-project", "Bad request", "X-Project-Id: a project"
                               " id is 1-255 printable characters", name="INVALID_PARAMS")
            caller = Caller(project_id=project, user=request.headers.get("X-User-Id"),
                            roles=_roles(request.headers.get("X-Roles")))
        if url_project and url_project != caller.project_id and not caller.is_admin:
            raise ApiError(403, "wrong-project", "Forbidden",
                           f"this token is for project {caller.project_id}, not {url_project}",
                           name="FORBIDDEN")
        g.caller = Caller(project_id=caller.project_id, user=caller.user, roles=caller.roles,
                          request_id=g.request_id, address=address)

    @app.after_request
    def tag(response: Any) -> Any:
        response.headers["X-Openstack-Request-Id"] = getattr(g, "request_id", "")
        return response
