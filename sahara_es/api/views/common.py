"""What every view does: load the body with a schema, answer in Sahara's envelopes and codes."""

from __future__ import annotations

from typing import Any

from flask import Response, current_app, jsonify, request
from marshmallow import Schema

from sahara_es.api.limits import Limits, check_config_sizes, check_strings, malformed, parse
from sahara_es.api.pagination import check_params


def body(schema: type[Schema]) -> dict[str, Any]:
    """The request body loaded by ``schema``: a 400 for anything it does not accept, a 413
    for a body over the size limit (see ``api.limits``)."""
    limits: Limits = current_app.extensions["sahara_es.limits"]
    raw = request.get_data(cache=True)  # a 413 past MAX_CONTENT_LENGTH, unread
    if len(raw) >= limits.max_body_bytes:
        # a chunked body is cut at the limit, silently: reading on raises the 413 if it was
        request.stream.read(1)
    if not raw.strip():
        payload: Any = {}
    elif not request.is_json:
        raise malformed("the body is not valid JSON (send it as application/json)")
    else:
        payload = parse(raw, limits)
    if not isinstance(payload, dict):
        raise malformed("the body must be a JSON object")
    check_strings(payload)
    check_config_sizes(payload, limits)
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
