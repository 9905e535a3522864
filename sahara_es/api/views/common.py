"""What every view does: load the body with a schema, answer in Sahara's envelopes and codes."""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify, request
from marshmallow import Schema

from sahara_es.api.errors import bad_request
from sahara_es.api.pagination import check_params


def body(schema: type[Schema]) -> dict[str, Any]:
    """The request body loaded by ``schema``: a 400 for anything it does not accept."""
    payload = request.get_json(silent=True)
    if payload is None:
        if request.get_data():
            raise bad_request("the body is not valid JSON", code="malformed-body",
                              name="MALFORMED_REQUEST_BODY")
        payload = {}
    if not isinstance(payload, dict):
        raise bad_request("the body must be a JSON object", code="malformed-body",
                          name="MALFORMED_REQUEST_BODY")
    loaded: dict[str, Any] = schema().load(payload)
    return loaded


def answer(envelope: str | None, value: Any, status: int = 200,
           location: str | None = None) -> Response:
    response = jsonify({envelope: value} if envelope else value)
    response.status_code = status
    if location:
        response.headers["Location"] = location
    return response


def no_content(location: str | None = None) -> Response:
    response = Response(status=204)
    if location:
        response.headers["Location"] = location
    return response


def no_params(*allowed: str) -> None:
    check_params(allowed)


def location(path: str) -> str:
    return f"{request.host_url.rstrip('/')}/v2/{path}"
