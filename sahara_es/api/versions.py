"""API versions: discovery at ``/`` and the ``OpenStack-API-Version`` header (microversions).

A request may name a version with ``OpenStack-API-Version: data-processing 2.0``; none means
2.0, ``latest`` the newest. A malformed header is a 400, a version out of range a 406; every
response says which version answered and ``Vary``s on the header.
"""

from __future__ import annotations

import re

from flask import Flask, Response, g, request

from sahara_es.api.errors import ApiError

HEADER = "OpenStack-API-Version"
SERVICE = "data-processing"
MIN_VERSION = (2, 0)
MAX_VERSION = (2, 0)
_FORMAT = re.compile(r"^\s*(\d+)\.(\d+)\s*$")


def text(version: tuple[int, int]) -> str:
    return f"{version[0]}.{version[1]}"


def requested_version(header: str | None) -> tuple[int, int]:
    if not header:
        return MIN_VERSION
    for part in header.split(","):
        words = part.strip().split(None, 1)
        if len(words) == 2 and words[0].lower() == SERVICE:
            wanted = words[1].strip()
            if wanted.lower() == "latest":
                return MAX_VERSION
            match = _FORMAT.match(wanted)
            if match is None:
                raise ApiError(400, "bad-version", "Bad API version",
                               f"{HEADER}: {wanted!r} is not a version like"
                               f" '{SERVICE} {text(MAX_VERSION)}'", name="BAD_REQUEST")
            version = (int(match.group(1)), int(match.group(2)))
            if not MIN_VERSION <= version <= MAX_VERSION:
                raise ApiError(406, "version-not-supported", "API version not supported",
                               f"version {text(version)} is not supported: this service"
                               f" serves {text(MIN_VERSION)} to {text(MAX_VERSION)}",
                               name="NOT_ACCEPTABLE")
            return version
    return MIN_VERSION


def discovery(root: str) -> dict[str, object]:
    return {"versions": [{
        "id": "v2.0", "status": "CURRENT", "version": text(MAX_VERSION),
        "min_version": text(MIN_VERSION),
        "links": [{"rel": "self", "href": f"{root.rstrip('/')}/v2/"}],
        "media-types": [{"base": "application/json",
                         "type": "application/vnd.openstack.data-processing+json;version=2"}],
    }]}


def init_app(app: Flask) -> None:
    @app.before_request
    def negotiate() -> None:
        g.api_version = MIN_VERSION
        if request.path.startswith("/v2"):
            g.api_version = requested_version(request.headers.get(HEADER))

    @app.after_request
    def announce(response: Response) -> Response:
        if request.path.startswith("/v2"):
            version = getattr(g, "api_version", MIN_VERSION)
            response.headers[HEADER] = f"{SERVICE} {text(version)}"
            response.vary.add(HEADER)
        return response
