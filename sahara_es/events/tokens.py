"""API tokens of the built-in ``token`` auth mode. A token's stream is ``token-<sha256 of the
token>``: the token itself is never stored, and looking it up is one stream read."""

from __future__ import annotations

from dataclasses import dataclass

from sahara_es.events.registry import DomainEvent, registry


@registry.event("TokenIssued")
@dataclass(frozen=True)
class TokenIssued(DomainEvent):
    token_id: str
    """A short public name for the token (the first 12 hex digits of its hash)."""
    project_id: str
    user: str
    roles: list[str]
    description: str = ""


@registry.event("TokenRevoked")
@dataclass(frozen=True)
class TokenRevoked(DomainEvent):
    reason: str = ""
