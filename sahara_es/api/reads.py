"""Read-your-writes on an API process that reads from memory (doc/api-processes.rst).

- Every write's answer names what it wrote in ``X-Sahara-Es-Written``
  (``<stream>@<version>``, comma-separated). A client that sends that header back with a
  later request reads at least that write on whichever process answers: a process whose
  memory has not applied it yet reads those streams from the store first.
- A request whose caller (its token, or its project without one) this process has not
  answered for ``affinity_window`` seconds may have been answered by another process until
  now (the balancer moved it: a process died, came back, was added). Before it is answered,
  the process's tail reads the feed to its end once more (waiting at most ``sync_timeout``),
  and a show reads its resource from the store, brought up to its stream.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Final

from flask import Flask, Response, g, request

from sahara_es.api.service import service

WRITTEN_HEADER: Final = "X-Sahara-Es-Written"
MAX_WRITTEN: Final = 16
"""Streams one request may name in ``X-Sahara-Es-Written`` (more are ignored)."""
_WRITTEN = re.compile(r"^([a-z]{1,32}-[A-Za-z0-9_.:-]{1,128})@([0-9]{1,9})$")
DEFAULT_AFFINITY_WINDOW: Final = 1.0
"""Below the time HAProxy takes to send a caller back to a process it took it from (the
generated config's ``rise`` checks at ``inter``: 2 s), so that a caller moved away and back
always counts as moved."""
DEFAULT_SYNC_TIMEOUT: Final = 5.0
CALLERS_KEPT: Final = 100_000


@dataclass
class Affinity:
    """When this process last answered each caller (hashed: no token is kept)."""

    window: float = DEFAULT_AFFINITY_WINDOW
    _seen: OrderedDict[bytes, float] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def moved(self, caller_key: str) -> bool:
        """Whether the caller may have been answered elsewhere since this process last
        answered it (and note that it answers it now)."""
        digest = hashlib.blake2b(caller_key.encode(), digest_size=16).digest()
        now = time.monotonic()
        with self._lock:
            last = self._seen.pop(digest, None)
            self._seen[digest] = now
            while len(self._seen) > CALLERS_KEPT:
                self._seen.popitem(last=False)
        return last is None or now - last > self.window


def written_streams(value: str) -> dict[str, int]:
    """The ``<stream>@<version>`` entries of a ``X-Sahara-Es-Written`` header; malformed
    ones are ignored (a hint, never a reason to refuse a request)."""
    found: dict[str, int] = {}
    for entry in value.split(",")[:MAX_WRITTEN]:
        matched = _WRITTEN.fullmatch(entry.strip())
        if matched:
            stream, version = matched.group(1), int(matched.group(2))
            found[stream] = max(version, found.get(stream, 0))
    return found


def caller_key() -> str | None:
    """Who the balancer keeps on one process: the token, or the project without one."""
    token = request.headers.get("X-Auth-Token")
    if token:
        return f"token:{token}"
    project = request.headers.get("X-Project-Id")
    return f"project:{project}" if project else None


def init_app(app: Flask, *, affinity_window: float = DEFAULT_AFFINITY_WINDOW,
             sync_timeout: float = DEFAULT_SYNC_TIMEOUT) -> None:
    affinity = Affinity(affinity_window)

    @app.before_request
    def read_after_writes() -> None:
        memory, tail = service().memory, service().tail
        if memory is None or tail is None:
            return
        for stream, version in written_streams(request.headers.get(WRITTEN_HEADER, "")).items():
            if not memory.has(stream, version):
                memory.catch_up_stream(stream)
        key = caller_key()
        if key is not None and affinity.moved(key):
            tail.sync(sync_timeout)
            g.reads_from_store = True

    @app.after_request
    def name_writes(response: Response) -> Response:
        written: dict[str, int] = g.get("written_streams", {})
        if written:
            response.headers[WRITTEN_HEADER] = ",".join(
                f"{stream}@{version}" for stream, version in written.items())
        return response
