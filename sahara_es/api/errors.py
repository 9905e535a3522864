"""One error type for the API and one handler: every refusal answers with both Sahara's
fields, which python-saharaclient reads (``error_code``, ``error_name``, ``error_message``),
and the API-SIG errors document (``errors: [{request_id, code, status, title, detail}]``).
No exception escapes as an HTML page or a bare 500.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, current_app, g, jsonify
from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from sahara_es.commands import errors as domain
from sahara_es.store import StoreError

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An HTTP error with a stable code (``sahara-es.<code>``) and Sahara's error name."""

    def __init__(self, status: int, code: str, title: str, detail: str, *,
                 name: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.title = title
        self.detail = detail
        self.name = name or code.upper().replace("-", "_")
        self.headers = headers or {}

    def to_dict(self) -> dict[str, Any]:
        request_id = getattr(g, "request_id", None)
        return {
            "error_code": self.status,
            "error_name": self.name,
            "error_message": self.detail,
            "errors": [{"request_id": request_id, "code": f"sahara-es.{self.code}",
                        "status": self.status, "title": self.title, "detail": self.detail}],
        }


def bad_request(detail: str, code: str = "invalid-request",
                name: str = "INVALID_PARAMS_ON_REQUEST") -> ApiError:
    return ApiError(400, code, "Bad request", detail, name=name)


_DOMAIN: list[tuple[type[domain.CommandError], int, str, str]] = [
    (domain.QuotaExceeded, 403, "Quota exceeded", "QUOTA_EXCEEDED"),
    (domain.Forbidden, 403, "Forbidden", "FORBIDDEN"),
    (domain.NotVisible, 404, "Not found", "NOT_FOUND"),
    (domain.NameInUse, 409, "Name in use", "NAME_ALREADY_EXISTS"),
    (domain.InUse, 409, "Resource in use", "RESOURCE_IN_USE"),
    (domain.Protected, 409, "Resource protected", "UPDATE_FAILED"),
    (domain.ChangedConcurrently, 409, "Changed concurrently", "CONFLICT"),
    (domain.Conflict, 409, "Conflict", "CONFLICT"),
    (domain.Invalid, 400, "Invalid request", "INVALID_DATA"),
]


def from_domain(error: domain.CommandError) -> ApiError:
    for cls, status, title, name in _DOMAIN:
        if isinstance(error, cls):
            return ApiError(status, error.code, title, error.message, name=name)
    return ApiError(400, error.code, "Invalid request", error.message)


def from_validation(error: ValidationError) -> ApiError:
    return ApiError(400, "validation-error", "Validation error",
                    "; ".join(_flatten(error.messages)), name="VALIDATION_ERROR")


def _flatten(messages: Any, path: str = "") -> list[str]:
    if isinstance(messages, dict):
        out: list[str] = []
        for key, value in messages.items():
            shown = str(key) if len(str(key)) <= 60 else f"{str(key)[:57]}..."
            where = f"{path}.{shown}" if path else shown
            if key == "_schema":
                where = path or "body"
            out += _flatten(value, where)
        return out
    if isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        return [f"{path}: {m}" if path else m for m in messages]
    if isinstance(messages, list):
        return [line for m in messages for line in _flatten(m, path)]
    return [f"{path}: {messages}"]


def respond(error: ApiError) -> Response:
    response = jsonify(error.to_dict())
    response.status_code = error.status
    for key, value in error.headers.items():
        response.headers[key] = value
    return response


def init_app(app: Flask) -> None:
    app.register_error_handler(ApiError, respond)
    app.register_error_handler(domain.CommandError, lambda e: respond(from_domain(e)))
    app.register_error_handler(ValidationError, lambda e: respond(from_validation(e)))

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(error: RequestEntityTooLarge) -> Response:
        limit = current_app.config.get("MAX_CONTENT_LENGTH")
        return respond(ApiError(413, "body-too-large", "Request body too large",
                                f"the request body is larger than the limit of {limit} bytes"
                                if limit else "the request body is too large",
                                name="REQUEST_ENTITY_TOO_LARGE"))

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        status = error.code or 500
        name = (error.name or "error").upper().replace(" ", "_")
        return respond(ApiError(status, name.lower().replace("_", "-"), error.name or "Error",
                                error.description or error.name or "", name=name))

    @app.errorhandler(StoreError)
    def store_error(error: StoreError) -> Response:
        log.warning("store error: %s", error)
        # the store's own words may name hosts or files of the server: the log has them
        return respond(ApiError(503, "store-unavailable", "Service unavailable",
                                "the store could not complete the request; retry (request id"
                                f" {getattr(g, 'request_id', '?')})",
                                headers={"Retry-After": "1"}))

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> Response:
        log.exception("unexpected error")
        return respond(ApiError(500, "internal-error", "Internal error",
                                "the request failed unexpectedly; see the service log with"
                                f" request id {getattr(g, 'request_id', '?')}",
                                name="INTERNAL_SERVER_ERROR"))
