"""The ``keystone`` auth mode against a real Keystone (``tools/keystone``): a real ``sahara-es
--config-file x.conf api`` process, configured only from that file (``[api]
auth_strategy = keystone``, keystonemiddleware's ``[keystone_authtoken]``), validates the
tokens Keystone issued to users of two projects it was given here."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from keystoneauth1 import session as ks_session
from keystoneauth1.identity import v3

from sahara_es.cli.config import CONFIG_DIRS_ENV, CONFIG_FILES_ENV, ENVIRONMENT
from tests.engines import ROOT, wait_until
from tests.integration.conftest import RealKeystone


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass(frozen=True)
class KeystoneUser:
    name: str
    password: str
    project_id: str
    project_name: str


class Identity:
    """Projects, users and role grants made with the bootstrap admin's token."""

    def __init__(self, keystone: RealKeystone) -> None:
        self.auth_url = keystone.auth_url
        self.admin = ks_session.Session(auth=v3.Password(
            auth_url=keystone.auth_url, username="admin", password=keystone.admin_password,
            project_name="admin", user_domain_id="default", project_domain_id="default"))
        self.made: list[str] = []

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        answer = self.admin.post(f"{self.auth_url}{path}", json=body)
        found: dict[str, Any] = answer.json()
        return found

    def _role_id(self, name: str) -> str:
        roles = self.admin.get(f"{self.auth_url}/roles?name={name}").json()["roles"]
        role_id: str = roles[0]["id"]
        return role_id

    def user_in_new_project(self, prefix: str, role: str = "member") -> KeystoneUser:
        tag = uuid.uuid4().hex[:8]
        project = self._post("/projects", {"project": {
            "name": f"{prefix}-{tag}", "domain_id": "default"}})["project"]
        password = secrets.token_urlsafe(16)
        user = self._post("/users", {"user": {
            "name": f"{prefix}-user-{tag}", "password": password, "domain_id": "default",
            "default_project_id": project["id"]}})["user"]
        self.admin.put(f"{self.auth_url}/projects/{project['id']}/users/{user['id']}/roles/"
                       f"{self._role_id(role)}")
        self.made += [f"/users/{user['id']}", f"/projects/{project['id']}"]
        return KeystoneUser(user["name"], password, project["id"], project["name"])

    def token(self, user: KeystoneUser) -> str:
        token = ks_session.Session(auth=v3.Password(
            auth_url=self.auth_url, username=user.name, password=user.password,
            project_name=user.project_name, user_domain_id="default",
            project_domain_id="default")).get_token()
        assert token, f"Keystone issued {user.name} no token"
        return token

    def clean_up(self) -> None:
        for path in self.made:
            self.admin.delete(f"{self.auth_url}{path}", raise_exc=False)


@pytest.fixture
def identity(real_keystone: RealKeystone) -> Iterator[Identity]:
    made = Identity(real_keystone)
    yield made
    made.clean_up()


@pytest.fixture
def keystone_api(request: pytest.FixtureRequest, url: str, tmp_path: Path,
                 real_keystone: RealKeystone, identity: Identity) -> Iterator[str]:
    """``sahara-es --config-file api.conf api``: everything it knows of Keystone, its store
    and its port is in that file (no flag, no SAHARA_ES_* variable says otherwise). Its
    ``[api] workers`` is the test's parameter, if any (more than one: gunicorn)."""
    workers = getattr(request, "param", 1)
    service = identity.user_in_new_project("sahara-service", role="service")
    port = free_port()
    conf = tmp_path / "api.conf"
    conf.write_text(f"""[DEFAULT]
data_dir = {tmp_path / "state"}

[database]
connection = {url}

[api]
port = {port}
workers = {workers}
auth_strategy = keystone

[keystone_authtoken]
www_authenticate_uri = {real_keystone.auth_url}
auth_url = {real_keystone.auth_url}
auth_type = password
username = {service.name}
password = {service.password}
project_name = {service.project_name}
user_domain_id = default
project_domain_id = default
""")
    env = {name: value for name, value in os.environ.items()
           if name not in set(ENVIRONMENT.values()) - {"SAHARA_ES_CASSANDRA_CREDENTIALS"}
           and name not in (CONFIG_FILES_ENV, CONFIG_DIRS_ENV)}
    log_path = tmp_path / "api.log"
    with log_path.open("wb") as log:
        api = subprocess.Popen(
            [sys.executable, "-m", "sahara_es.cli", "--config-file", str(conf), "api"],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
            env={**env, "PYTHONPATH": str(ROOT)})
        try:
            wait_until(lambda: _answers(f"http://127.0.0.1:{port}/healthz", api, log_path),
                       timeout=60, poll=0.2)
            yield f"http://127.0.0.1:{port}/v2"
        finally:
            api.terminate()
            api.wait(30)


def _answers(health: str, process: subprocess.Popen[bytes], log: Path) -> bool:
    if process.poll() is not None:
        pytest.fail(f"the API exited:\n{log.read_text()}")
    try:
        return requests.get(health, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def test_a_keystone_users_token_acts_in_its_project(keystone_api: str,
                                                    identity: Identity) -> None:
    alice = identity.user_in_new_project("alice")
    headers = {"X-Auth-Token": identity.token(alice)}
    listed = requests.get(f"{keystone_api}/clusters", headers=headers, timeout=30)
    assert listed.status_code == 200, listed.text
    assert all(cluster["project_id"] == alice.project_id or cluster["is_public"]
               for cluster in listed.json()["clusters"])  # others' public ones are shared
    made = requests.post(f"{keystone_api}/data-sources", headers=headers, timeout=30, json={
        "name": "input", "type": "swift", "url": "swift://container/input"})
    assert made.status_code == 202, made.text
    assert made.json()["data_source"]["project_id"] == alice.project_id


def test_a_bogus_token_or_none_gets_401(keystone_api: str) -> None:
    for headers in ({"X-Auth-Token": "gAAAAAB-not-a-token"}, {}):
        refused = requests.get(f"{keystone_api}/clusters", headers=headers, timeout=30)
        assert refused.status_code == 401


def test_a_user_of_another_project_sees_nothing_of_the_first(keystone_api: str,
                                                             identity: Identity) -> None:
    alice, bob = identity.user_in_new_project("alice"), identity.user_in_new_project("bob")
    alices = {"X-Auth-Token": identity.token(alice)}
    bobs = {"X-Auth-Token": identity.token(bob)}
    made = requests.post(f"{keystone_api}/data-sources", headers=alices, timeout=30, json={
        "name": "input", "type": "swift", "url": "swift://container/input"}).json()
    path = f"{keystone_api}/data-sources/{made['data_source']['id']}"
    assert requests.get(path, headers=alices, timeout=30).status_code == 200
    assert requests.get(path, headers=bobs, timeout=30).status_code == 404
    listed = requests.get(f"{keystone_api}/data-sources", headers=bobs, timeout=30).json()
    assert made["data_source"]["id"] not in {found["id"] for found in listed["data_sources"]}
    # nor through a URL naming alice's project
    in_her_project = f"{keystone_api}/{alice.project_id}/data-sources"
    assert requests.get(in_her_project, headers=bobs, timeout=30).status_code == 403


@pytest.mark.parametrize("keystone_api", [2], indirect=True, ids=["gunicorn"])
def test_gunicorn_workers_read_keystone_from_the_same_file(keystone_api: str,
                                                           identity: Identity) -> None:
    alice = identity.user_in_new_project("alice")
    headers = {"X-Auth-Token": identity.token(alice)}
    for _ in range(4):  # whichever worker answers
        assert requests.get(f"{keystone_api}/clusters", headers=headers,
                            timeout=30).status_code == 200
        assert requests.get(f"{keystone_api}/clusters", timeout=30,
                            headers={"X-Auth-Token": "bogus"}).status_code == 401
