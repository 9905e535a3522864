"""Issuing, revoking and checking the tokens of the built-in ``token`` auth mode."""

from __future__ import annotations

import contextlib
import hashlib
import secrets
from dataclasses import dataclass

from sahara_es.commands.caller import SYSTEM, Caller
from sahara_es.commands.errors import Invalid, NotVisible
from sahara_es.events import registry
from sahara_es.events import tokens as ev
from sahara_es.store import ConcurrencyConflict, Store

CATEGORY = "token"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedToken:
    token: str
    token_id: str


def issue(store: Store, project_id: str, *, user: str | None = None,
          roles: list[str] | tuple[str, ...] = (), description: str = "") -> IssuedToken:
    if not project_id:
        raise Invalid("a token needs a project")
    token = f"sahara-{secrets.token_urlsafe(32)}"
    digest = _digest(token)
    event = ev.TokenIssued(digest[:12], project_id, user or f"{project_id}-user",
                           sorted(set(roles)), description)
    store.append(f"{CATEGORY}-{digest}", [registry.new_event(event, SYSTEM.metadata())], 0)
    return IssuedToken(token, digest[:12])


def authenticate(store: Store, token: str) -> Caller | None:
    """The caller a token stands for, or None if it is unknown or revoked."""
    issued: ev.TokenIssued | None = None
    for recorded in store.read(f"{CATEGORY}-{_digest(token)}"):
        fact = registry.decode(recorded)
        if isinstance(fact, ev.TokenIssued):
            issued = fact
        elif isinstance(fact, ev.TokenRevoked):
            return None
    if issued is None:
        return None
    return Caller(project_id=issued.project_id, user=issued.user, roles=frozenset(issued.roles))


def revoke(store: Store, token_or_id: str, reason: str = "") -> str:
    """Revoke a token given itself or its id; the id. Revoking twice is a no-op."""
    stream = f"{CATEGORY}-{_digest(token_or_id)}"
    if store.stream_version(stream) == 0:
        matches = [s for s in store.list_streams(CATEGORY)
                   if s.startswith(f"{CATEGORY}-{token_or_id}")] if len(token_or_id) >= 8 else []
        if len(matches) != 1:
            raise NotVisible(f"no token {token_or_id}")
        stream = matches[0]
    version = store.stream_version(stream)
    events = [registry.decode(e) for e in store.read(stream)]
    if not any(isinstance(e, ev.TokenRevoked) for e in events):
        with contextlib.suppress(ConcurrencyConflict):  # revoked meanwhile
            store.append(stream, [registry.new_event(ev.TokenRevoked(reason),
                                                     SYSTEM.metadata())], version)
    return stream[len(CATEGORY) + 1:][:12]
