"""One ``QuotaExceeded``: the commands' and the quota claims' names are the same class, a
``Forbidden`` the API answers with 403, never retried."""

from __future__ import annotations

import pickle

import pytest
from flask import Flask

from sahara_es.api import errors as api_errors
from sahara_es.commands import errors
from sahara_es.engine.attempts import decide
from sahara_es.infra import quotas


def test_both_names_are_one_class() -> None:
    assert quotas.QuotaExceeded is errors.QuotaExceeded
    assert issubclass(quotas.QuotaExceeded, errors.Forbidden)
    assert quotas.QuotaExceeded.code == "quota-exceeded"


def test_raised_by_the_claims_it_says_what_was_exceeded() -> None:
    refused = quotas.QuotaExceeded("p1", "cores", 8, -2, 10)
    assert (refused.project, refused.resource, refused.asked, refused.free, refused.limit) == (
        "p1", "cores", 8, -2, 10)
    assert str(refused) == refused.message == (
        "quota exceeded for project p1: cores 8 asked, 0 free of a limit of 10")


def test_raised_with_a_message_it_keeps_it() -> None:
    refused = errors.QuotaExceeded("2 clusters were asked for and not all fit")
    assert str(refused) == refused.message == "2 clusters were asked for and not all fit"
    assert refused.resource is None and refused.limit is None
    assert str(pickle.loads(pickle.dumps(refused))) == refused.message


@pytest.mark.parametrize("refused", [
    errors.QuotaExceeded("over quota"),
    quotas.QuotaExceeded("p1", "ram_mb", 4096, 0, 8192),
])
def test_it_is_not_retryable(refused: errors.QuotaExceeded) -> None:
    assert refused.retryable is False
    assert decide(refused).retryable is False


@pytest.mark.parametrize("refused", [
    errors.QuotaExceeded("over quota"),
    quotas.QuotaExceeded("p1", "instances", 3, 1, 20),
])
def test_the_api_answers_403_quota_exceeded(refused: errors.QuotaExceeded) -> None:
    mapped = api_errors.from_domain(refused)
    assert (mapped.status, mapped.code, mapped.name) == (403, "quota-exceeded", "QUOTA_EXCEEDED")

    app = Flask(__name__)
    api_errors.init_app(app)

    @app.route("/refuse")
    def refuse() -> str:
        raise refused

    response = app.test_client().get("/refuse")
    assert response.status_code == 403
    body = response.get_json()
    assert body["error_name"] == "QUOTA_EXCEEDED"
    assert body["error_message"] == str(refused)
    assert body["errors"][0]["code"] == "sahara-es.quota-exceeded"
