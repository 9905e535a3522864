"""Credentials sent through the v2 API are sealed before they reach the event log, never shown,
and unreadable for good once their resource is deleted; on both stores."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from sahara_es.api.app import ApiConfig, stop_app
from sahara_es.api.compose import app_for
from sahara_es.events.resources import Kind
from sahara_es.store import Store

PASSWORD = f"pw-{uuid.uuid4().hex}"


@pytest.fixture
def client(store: Store, tmp_path: Path) -> Iterator[FlaskClient]:
    app: Flask = app_for(ApiConfig(auth="noauth", data_dir=str(tmp_path / "state")),
                         store=store)
    yield app.test_client()
    stop_app(app)


def stored(store: Store, kind: Kind, resource_id: str) -> str:
    return json.dumps([e.data for e in store.read(kind.stream(resource_id))])


@pytest.mark.parametrize(("path", "envelope", "kind", "fields"), [
    ("data-sources", "data_source", Kind.DATA_SOURCE,
     {"type": "swift", "url": "swift://c/o",
      "credentials": {"user": "alice", "password": PASSWORD}}),
    ("job-binaries", "job_binary", Kind.JOB_BINARY,
     {"url": "swift://c/job.jar", "extra": {"user": "alice", "password": PASSWORD}}),
])
def test_credentials_sent_to_the_api_are_sealed_hidden_and_shredded_with_their_resource(
    client: FlaskClient, store: Store, path: str, envelope: str, kind: Kind,
    fields: dict[str, object],
) -> None:
    headers = {"X-Project-Id": f"p{uuid.uuid4().hex[:8]}"}
    created = client.post(f"/v2/{path}", headers=headers,
                          json={"name": f"r-{uuid.uuid4().hex[:8]}", **fields})
    assert created.status_code == 202, created.get_json()
    resource_id = created.get_json()[envelope]["id"]

    assert PASSWORD not in created.get_data(as_text=True)
    assert PASSWORD not in client.get(f"/v2/{path}/{resource_id}",
                                      headers=headers).get_data(as_text=True)
    assert PASSWORD not in stored(store, kind, resource_id)  # sealed in the log
    assert store.get_data_key(kind.stream(resource_id)) is not None

    assert client.delete(f"/v2/{path}/{resource_id}", headers=headers).status_code == 204

    assert store.get_data_key(kind.stream(resource_id)) is None  # shredded
    assert PASSWORD not in stored(store, kind, resource_id)
