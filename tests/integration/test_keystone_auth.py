"""The ``keystone`` auth mode at its boundary, in-process: keystonemiddleware's own
``AuthTokenFixture`` answers token validations the way Keystone would (roles such as admin are
easy to give here); everything after the middleware is the real service. A real Keystone and
a real API process configured from a file: ``test_keystone_real.py``."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from flask.testing import FlaskClient
from keystonemiddleware.fixture import AuthTokenFixture

from sahara_es.api.app import ApiConfig, stop_app
from sahara_es.api.compose import app_for
from sahara_es.store import Store


@pytest.fixture
def keystone() -> Iterator[AuthTokenFixture]:
    fixture = AuthTokenFixture()
    fixture.setUp()
    yield fixture
    fixture.cleanUp()


@pytest.fixture
def client(store: Store, keystone: AuthTokenFixture) -> Iterator[FlaskClient]:
    app = app_for(ApiConfig(auth="keystone", keystone={
        "www_authenticate_uri": "http://keystone.invalid:5000/v3",
        "delay_auth_decision": False}), store=store)
    yield app.test_client()
    stop_app(app)


def test_a_keystone_token_acts_in_its_project(client: FlaskClient,
                                              keystone: AuthTokenFixture) -> None:
    project, other = uuid.uuid4().hex, uuid.uuid4().hex
    token = uuid.uuid4().hex
    keystone.add_token_data(token_id=token, project_id=project, user_id="alice",
                            role_list=["member"])
    stranger = uuid.uuid4().hex
    keystone.add_token_data(token_id=stranger, project_id=other, user_id="bob",
                            role_list=["member"])
    made = client.post("/v2/data-sources", headers={"X-Auth-Token": token}, json={
        "name": f"ds-{project[:8]}", "type": "swift", "url": "swift://c/o"})
    assert made.status_code == 202
    assert made.get_json()["data_source"]["project_id"] == project
    path = f"/v2/data-sources/{made.get_json()['data_source']['id']}"
    assert client.get(path, headers={"X-Auth-Token": token}).status_code == 200
    assert client.get(path, headers={"X-Auth-Token": stranger}).status_code == 404


def test_an_unknown_token_is_refused_by_the_middleware(client: FlaskClient) -> None:
    refused = client.get("/v2/clusters", headers={"X-Auth-Token": "not-a-token"})
    assert refused.status_code == 401
    assert client.get("/v2/clusters").status_code == 401


def test_the_admin_role_sees_every_project(client: FlaskClient,
                                           keystone: AuthTokenFixture) -> None:
    owner, admin = uuid.uuid4().hex, uuid.uuid4().hex
    keystone.add_token_data(token_id=owner, project_id=uuid.uuid4().hex, role_list=["member"])
    keystone.add_token_data(token_id=admin, project_id=uuid.uuid4().hex, role_list=["admin"])
    made = client.post("/v2/job-binaries", headers={"X-Auth-Token": owner}, json={
        "name": f"jb-{owner[:8]}", "url": "swift://c/o.jar"}).get_json()["job_binary"]
    assert client.get(f"/v2/job-binaries/{made['id']}",
                      headers={"X-Auth-Token": admin}).status_code == 200
