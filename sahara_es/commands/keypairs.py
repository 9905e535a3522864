"""A project's key pairs (Nova's key pairs, for the local provider): imported, replaced,
deleted, and looked up by the clusters that name one (``user_keypair_id``).

An operator imports them (``sahara-es keypair import``); a cluster created with
``user_keypair_id`` is refused (400, as Sahara) when its project has no key pair of that
name, and its nodes accept the key pair's public key; ``update_keypair`` pushes the key
pair's current public key to them.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization

from sahara_es.commands.caller import Caller
from sahara_es.commands.errors import Invalid
from sahara_es.events import registry
from sahara_es.events.keypairs import CATEGORY, KeyPairDeleted, KeyPairImported, keypair_stream
from sahara_es.store import ConcurrencyConflict, Store

MAX_PUBLIC_KEY = 16384


@dataclass(frozen=True)
class KeyPair:
    project_id: str
    name: str
    public_key: str
    fingerprint: str


def _state(store: Store, project_id: str, name: str) -> tuple[KeyPair | None, int]:
    """The key pair as its stream says now (None: never imported, or deleted) and the
    stream's version."""
    found: KeyPair | None = None
    version = 0
    for recorded in store.read(keypair_stream(project_id, name)):
        version = recorded.version
        fact = registry.decode(recorded)
        if isinstance(fact, KeyPairImported):
            found = KeyPair(fact.project_id, fact.name, fact.public_key, fact.fingerprint)
        elif isinstance(fact, KeyPairDeleted):
            found = None
    return found, version


def find_keypair(store: Store, project_id: str, name: str) -> KeyPair | None:
    """The project's key pair of that name, with its current public key; None if none."""
    return _state(store, project_id, name)[0]


def require_keypair(store: Store, project_id: str, name: str | None) -> None:
    """``Invalid`` (400, as Sahara's ``check_keypair_exists``) unless the project has a key
    pair named ``name``; nothing to check without a name."""
    if name and find_keypair(store, project_id, name) is None:
        raise Invalid(f"requested key pair {name!r} not found in project {project_id}")


def checked_public_key(text: str) -> tuple[str, str]:
    """One OpenSSH public key line, normalized, and its ``SHA256:`` fingerprint; ``Invalid``
    for anything else (a private key included: its text is never repeated)."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if len(text) > MAX_PUBLIC_KEY or len(lines) != 1:
        raise Invalid("a public key is one OpenSSH line (type, base64 key, comment)")
    line = lines[0]
    try:
        serialization.load_ssh_public_key(line.encode())
    except (ValueError, TypeError, IndexError):  # the parser's ways of saying "not a key"
        raise Invalid("not an OpenSSH public key (ssh-ed25519 AAAA..., ssh-rsa AAAA...)"
                      ) from None
    blob = base64.b64decode(line.split()[1])
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    return line, f"SHA256:{digest}"


def import_keypair(store: Store, caller: Caller, project_id: str, name: str,
                   public_key: str) -> KeyPair:
    """Record ``public_key`` as the project's key pair ``name``, replacing the key it had;
    the key pair as it is now."""
    if not name or len(name) > 255 or any(c.isspace() or not c.isprintable() for c in name):
        raise Invalid("a key pair name is 1 to 255 printable characters without spaces")
    line, fingerprint = checked_public_key(public_key)
    for _ in range(10):
        current, version = _state(store, project_id, name)
        if current is not None and current.public_key == line:
            return current
        try:
            store.append(keypair_stream(project_id, name), [registry.new_event(
                KeyPairImported(project_id, name, line, fingerprint), caller.metadata())],
                version)
        except ConcurrencyConflict:
            continue
        return KeyPair(project_id, name, line, fingerprint)
    raise ConcurrencyConflict(f"key pair {name} of {project_id} kept changing")


def delete_keypair(store: Store, caller: Caller, project_id: str, name: str) -> bool:
    """Delete the key pair (clusters naming it keep the key their nodes have); whether
    there was one."""
    for _ in range(10):
        current, version = _state(store, project_id, name)
        if current is None:
            return False
        try:
            store.append(keypair_stream(project_id, name), [registry.new_event(
                KeyPairDeleted(project_id, name), caller.metadata())], version)
        except ConcurrencyConflict:
            continue
        return True
    raise ConcurrencyConflict(f"key pair {name} of {project_id} kept changing")


def list_keypairs(store: Store, project_id: str | None = None) -> list[KeyPair]:
    """Every key pair (of ``project_id``), by project and name."""
    found = []
    for stream in store.list_streams(CATEGORY):
        first = next(iter(store.read(stream, 1, to_version=1)), None)
        if first is None:
            continue
        fact = registry.decode(first)
        if not isinstance(fact, KeyPairImported):
            continue
        if project_id is not None and fact.project_id != project_id:
            continue
        keypair = find_keypair(store, fact.project_id, fact.name)
        if keypair is not None:
            found.append(keypair)
    return sorted(found, key=lambda k: (k.project_id, k.name))
