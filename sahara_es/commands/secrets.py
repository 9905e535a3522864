"""Sealed secrets: what a resource's events must keep but never show, sealed with the
resource's own data key, which the store keeps outside the events (``Store.create_data_key``).

Events are never deleted, and every tool that reads them (``events show``, ``export``,
``audit``, ``replay``, the feed, backups) would show a secret written in them. So a secret is
written as a *sealed* string, ``sbx1:<key id>:<nonce and ciphertext, base64>``, encrypted with
AES-256-GCM (``cryptography``) under the data key of the resource that owns it (its stream id,
``cluster-<id>``), bound to that owner and to what the secret is for (the associated data), so
that a sealed value copied into another resource's events does not open there.

Deleting a resource deletes its data key (``SecretBox.shred``): its sealed secrets can no
longer be opened by anyone, wherever their events were copied (crypto-shredding). A key made
again for the same owner is another key (another id): what the first one sealed stays shut.

Opening fails with ``SecretUnreadable``, whose message names the owner and the key id, never
the secret or the key.

The secret fields of EDP resources (a data source's ``credentials``, a job binary's ``extra``
with its access keys) go through ``create_with_secrets``, ``update_with_secrets`` and
``delete_with_secrets``; a job engine reads them with ``open_secret_field``.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import uuid
from typing import Any, TypeGuard

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sahara_es.commands import resources
from sahara_es.commands.caller import Caller
from sahara_es.events.resources import Doc, Kind
from sahara_es.store import DataKey, DataKeyStore, Store

SCHEME = "sbx1"
"""The sealed format's name and version, the first field of every sealed string."""

_NONCE_BYTES = 12
_KEY_BITS = 256


class SecretUnreadable(Exception):
    """A sealed secret cannot be opened: its data key was deleted (the resource is gone), it
    was sealed for another owner or purpose, or it is not a sealed string. Not retryable."""

    retryable = False


def is_sealed(value: object) -> TypeGuard[str]:
    """Whether ``value`` is a sealed string (it says nothing of whether it still opens)."""
    return isinstance(value, str) and value.startswith(f"{SCHEME}:")


def key_id_of(sealed: str) -> str:
    """The id of the data key that sealed ``sealed``."""
    try:
        scheme, key_id, _ = sealed.split(":", 2)
    except ValueError:
        raise SecretUnreadable("not a sealed secret") from None
    if scheme != SCHEME or not key_id:
        raise SecretUnreadable("not a sealed secret")
    return key_id


def _associated(owner: str, purpose: str) -> bytes:
    return json.dumps(["sahara-es", SCHEME, owner, purpose]).encode()


class SecretBox:
    """Seals and opens the secrets of resources with their data keys in ``store``."""

    def __init__(self, store: DataKeyStore) -> None:
        self.store = store

    def data_key(self, owner: str) -> DataKey:
        """``owner``'s data key, made if it has none (two makers agree on one)."""
        found = self.store.get_data_key(owner)
        if found is not None:
            return found
        return self.store.create_data_key(owner, uuid.uuid4().hex,
                                          AESGCM.generate_key(bit_length=_KEY_BITS))

    def seal(self, owner: str, secret: str, *, purpose: str) -> str:
        """``secret`` sealed with ``owner``'s data key, for ``purpose`` only."""
        key = self.data_key(owner)
        nonce = os.urandom(_NONCE_BYTES)
        sealed = AESGCM(key.material).encrypt(nonce, secret.encode(),
                                              _associated(owner, purpose))
        body = base64.urlsafe_b64encode(nonce + sealed).decode("ascii")
        return f"{SCHEME}:{key.key_id}:{body}"

    def open(self, owner: str, sealed: str, *, purpose: str) -> str:
        """The secret ``sealed`` holds; ``SecretUnreadable`` when it cannot be opened."""
        key_id = key_id_of(sealed)
        key = self.store.get_data_key(owner)
        if key is None or key.key_id != key_id:
            raise SecretUnreadable(f"the data key {key_id} of {owner} was deleted: its"
                                   " secrets are gone for good")
        try:
            raw = base64.urlsafe_b64decode(sealed.split(":", 2)[2].encode("ascii"))
            plain = AESGCM(key.material).decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:],
                                                 _associated(owner, purpose))
            return plain.decode()
        except (InvalidTag, binascii.Error, ValueError, UnicodeError):
            raise SecretUnreadable(f"a secret of {owner} ({purpose}) does not open with its"
                                   f" data key {key_id}: sealed for another owner or purpose,"
                                   " or damaged") from None

    def seal_json(self, owner: str, value: Any, *, purpose: str) -> str:
        """A JSON value (a dict of credentials) sealed as one string."""
        return self.seal(owner, json.dumps(value, sort_keys=True), purpose=purpose)

    def open_json(self, owner: str, sealed: str, *, purpose: str) -> Any:
        return json.loads(self.open(owner, sealed, purpose=purpose))

    def shred(self, owner: str) -> None:
        """Delete ``owner``'s data key: every secret it sealed is unreadable from now on."""
        self.store.delete_data_key(owner)


# -- the secret fields of data sources and job binaries ---------------------------------------

SECRET_FIELDS = {Kind.DATA_SOURCE: "credentials", Kind.JOB_BINARY: "extra"}
"""The field of each kind that holds its secrets (a dict), kept sealed in its events."""


def _purpose(kind: Kind) -> str:
    return f"{kind.label} {SECRET_FIELDS[kind]}"


def _sealed(store: Store, kind: Kind, resource_id: str, fields: Doc) -> Doc:
    """``fields`` with the kind's secret field sealed (an empty or absent one stays as is)."""
    name = SECRET_FIELDS[kind]
    value = fields.get(name)
    if not value or is_sealed(value):
        return fields
    sealed = SecretBox(store).seal_json(kind.stream(resource_id), value, purpose=_purpose(kind))
    return {**fields, name: sealed}


def create_with_secrets(store: Store, kind: Kind, caller: Caller, fields: Doc) -> Doc:
    """Create a data source or a job binary, its secret field sealed; nothing is left
    behind (no data key either) when it fails."""
    resource_id = resources.new_id()
    try:
        return resources.create(store, kind, caller, _sealed(store, kind, resource_id, fields),
                                resource_id=resource_id)
    except BaseException:
        SecretBox(store).shred(kind.stream(resource_id))
        raise


def update_with_secrets(store: Store, kind: Kind, resource_id: str, caller: Caller,
                        changes: Doc) -> Doc:
    """Change a data source or a job binary the caller owns, a new secret sealed (the same
    secret again changes nothing)."""
    doc = resources.owned(store, kind, resource_id, caller).doc
    assert doc is not None
    name = SECRET_FIELDS[kind]
    if name in changes and changes[name] == open_secret_field(store, kind, doc):
        changes = {k: v for k, v in changes.items() if k != name}
    return resources.update(store, kind, resource_id, caller,
                            _sealed(store, kind, resource_id, changes))


def delete_with_secrets(store: Store, kind: Kind, resource_id: str, caller: Caller) -> None:
    """Delete a data source or a job binary, and its data key: its secrets, sealed in its
    events, can no longer be read by anyone."""
    resources.delete(store, kind, resource_id, caller)
    SecretBox(store).shred(kind.stream(resource_id))


def open_secret_field(store: Store, kind: Kind, doc: Doc) -> Doc | None:
    """The secret field of a data source or a job binary, opened, for the job engine that
    uses it (``SecretUnreadable`` once the resource was deleted). One written before
    secrets were sealed is in clear already."""
    value = doc.get(SECRET_FIELDS[kind])
    if is_sealed(value):
        value = SecretBox(store).open_json(kind.stream(doc["id"]), value,
                                           purpose=_purpose(kind))
    opened: Doc | None = value
    return opened


# -- secrets in a job's configs ---------------------------------------------------------------

SECRET_CONFIG = re.compile(r"(password|secret|token|credential)", re.IGNORECASE)
"""Job configs whose names say they hold a secret (``fs.swift.service.sahara.password``,
``fs.s3a.secret.key``...): kept sealed in the job's events, opened for its job engine."""
JOB_CONFIG_PURPOSE = "job config"


def seal_job_configs(store: DataKeyStore, job_id: str, configs: Doc) -> Doc:
    """``configs`` with every secret-named string value sealed with the job's data key."""
    box = SecretBox(store)
    owner = Kind.JOB.stream(job_id)
    return {name: box.seal(owner, value, purpose=JOB_CONFIG_PURPOSE)
            if SECRET_CONFIG.search(name) and isinstance(value, str) and value
            and not is_sealed(value) else value
            for name, value in configs.items()}


def open_job_configs(store: DataKeyStore, job_id: str, configs: Doc) -> Doc:
    """A job's configs as its job engine gets them: sealed values opened."""
    box = SecretBox(store)
    owner = Kind.JOB.stream(job_id)
    return {name: box.open(owner, value, purpose=JOB_CONFIG_PURPOSE) if is_sealed(value)
            else value for name, value in configs.items()}
