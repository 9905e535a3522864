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
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import uuid
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sahara_es.store import DataKey, Store

SCHEME = "sbx1"
"""The sealed format's name and version, the first field of every sealed string."""

_NONCE_BYTES = 12
_KEY_BITS = 256


class SecretUnreadable(Exception):
    """A sealed secret cannot be opened: its data key was deleted (the resource is gone), it
    was sealed for another owner or purpose, or it is not a sealed string. Not retryable."""

    retryable = False


def is_sealed(value: object) -> bool:
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

    def __init__(self, store: Store) -> None:
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
