"""A data source's credentials and a job binary's access keys are sealed in their events,
opened for the job engine only, and unreadable for good once the resource is deleted; on
both stores."""

from __future__ import annotations

import json
import uuid

import pytest

from sahara_es.commands.caller import Caller
from sahara_es.commands.secrets import (
    SecretUnreadable,
    create_with_secrets,
    delete_with_secrets,
    is_sealed,
    open_secret_field,
    update_with_secrets,
)
from sahara_es.events.resources import Kind
from sahara_es.store import Store

PASSWORD = f"pw-{uuid.uuid4().hex}"


def caller() -> Caller:
    return Caller(project_id=f"p{uuid.uuid4().hex[:8]}", user="alice")


def stored(store: Store, kind: Kind, resource_id: str) -> str:
    return json.dumps([e.data for e in store.read(kind.stream(resource_id))])


@pytest.mark.parametrize(("kind", "fields", "secret"), [
    (Kind.DATA_SOURCE, {"type": "swift", "url": "swift://c/o"}, "credentials"),
    (Kind.JOB_BINARY, {"url": "swift://c/job.jar"}, "extra"),
])
def test_secret_fields_are_sealed_opened_changed_and_shredded(
    store: Store, kind: Kind, fields: dict[str, str], secret: str
) -> None:
    who = caller()
    creds = {"user": "admin", "password": PASSWORD}

    doc = create_with_secrets(store, kind, who, {"name": f"n{uuid.uuid4().hex[:8]}",
                                                 **fields, secret: creds})

    assert is_sealed(doc[secret]) and PASSWORD not in stored(store, kind, doc["id"])
    assert open_secret_field(store, kind, doc) == creds

    version = store.stream_version(kind.stream(doc["id"]))
    same = update_with_secrets(store, kind, doc["id"], who, {secret: dict(creds)})
    assert store.stream_version(kind.stream(doc["id"])) == version  # nothing changed
    new = {"user": "admin", "password": f"{PASSWORD}-2"}
    changed = update_with_secrets(store, kind, doc["id"], who, {secret: new})
    assert open_secret_field(store, kind, changed) == new and same[secret] == doc[secret]
    assert PASSWORD not in stored(store, kind, doc["id"])

    delete_with_secrets(store, kind, doc["id"], who)

    assert store.get_data_key(kind.stream(doc["id"])) is None
    for version_doc in (doc, changed):
        with pytest.raises(SecretUnreadable) as unreadable:
            open_secret_field(store, kind, version_doc)
        assert PASSWORD not in str(unreadable.value)


def test_no_secret_needs_no_key_and_clear_legacy_fields_still_read(store: Store) -> None:
    doc = create_with_secrets(store, Kind.DATA_SOURCE, caller(), {
        "name": f"n{uuid.uuid4().hex[:8]}", "type": "hdfs", "url": "hdfs://nn/x"})

    assert store.get_data_key(Kind.DATA_SOURCE.stream(doc["id"])) is None
    assert open_secret_field(store, Kind.DATA_SOURCE, doc) is None
    assert open_secret_field(store, Kind.DATA_SOURCE, {**doc, "credentials": {"u": "v"}}) \
        == {"u": "v"}


def test_a_failed_create_leaves_no_data_key(store: Store,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    who, name = caller(), f"n{uuid.uuid4().hex[:8]}"
    fields = {"name": name, "type": "swift", "url": "swift://c/o",
              "credentials": {"password": PASSWORD}}
    create_with_secrets(store, Kind.DATA_SOURCE, who, fields)
    failed = str(uuid.uuid4())
    monkeypatch.setattr("sahara_es.commands.resources.new_id", lambda: failed)

    with pytest.raises(Exception, match="already"):
        create_with_secrets(store, Kind.DATA_SOURCE, who, fields)  # the name is taken

    assert store.get_data_key(Kind.DATA_SOURCE.stream(failed)) is None
    assert store.stream_version(Kind.DATA_SOURCE.stream(failed)) == 0
