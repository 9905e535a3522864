"""The events of a project's key pairs: what Nova's key pairs are to Sahara.

A key pair is a public key under a name in a project, in its own stream
(``keypair-<digest of project and name>``): importing it again under the same name replaces
its public key (the last ``KeyPairImported`` is the current key), deleting it ends it until it
is imported anew. Public keys are not secrets: they are recorded in clear. A cluster names one
as its ``user_keypair_id``; its nodes accept that key's current public key.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from sahara_es.events.registry import DomainEvent, registry

CATEGORY = "keypair"


def keypair_stream(project_id: str, name: str) -> str:
    """The key pair's stream: a digest, so that no project id or name shapes a stream id."""
    digest = hashlib.sha256(f"{project_id}\0{name}".encode()).hexdigest()[:32]
    return f"{CATEGORY}-{digest}"


@registry.event("KeyPairImported")
@dataclass(frozen=True)
class KeyPairImported(DomainEvent):
    project_id: str
    name: str
    public_key: str
    """One OpenSSH public key line (``ssh-ed25519 AAAA… comment``)."""
    fingerprint: str
    """``SHA256:…``, as ``ssh-keygen -l`` prints it."""


@registry.event("KeyPairDeleted")
@dataclass(frozen=True)
class KeyPairDeleted(DomainEvent):
    project_id: str
    name: str
