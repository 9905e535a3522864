"""Waiting inside a node step: bounded by the step's limits, not only by its own timeout.

Provisioning runs every plugin task of a node step inside ``command_limits(timeout, stop)``
(``NodeStep``): the step's deadline and the workflow's cancel. SSH commands obey those by
themselves; what a plugin does between them -- polling a daemon until it shows up, reading a
node's status page over HTTP -- obeys them through this module:

- ``Wait(timeout, what)``: a polling loop's limit, its own ``timeout`` (a tenant's ``Start
  timeout`` among others) cut to the step's remaining time. ``check()`` raises
  ``WaitStopped`` once the work is cancelled, ``sleep()`` wakes as soon as it is, and
  ``timed_out()`` is the ``WaitTimedOut`` to raise when the step's time, not the wait's own,
  ran out (both are ``PermanentFailure``: retrying within a step that is over cannot help).
- ``poll(wait, probe, expired=...)``: the polling loop itself, the plugins' one way to wait
  for a daemon, a worker's drain or a retirement.
- ``read_status_page(host, port, path)``: a node's HTTP status page, as untrusted input (a
  tenant with a shell on its node can serve anything there): an overall deadline over
  connecting, the headers and the body (not a per-read timeout that a server sending a byte
  at a time never reaches), at most ``STATUS_PAGE_LIMIT`` bytes, no redirect followed, no
  proxy, and the cancel checked between reads.

Outside any ``command_limits`` block only the waits' own timeouts apply.
"""

from __future__ import annotations

import http.client
import socket
import time
from collections.abc import Callable
from typing import Any, TypeVar

from sahara_es.engine import PermanentFailure
from sahara_es.infra.ssh import CommandLimits, current_limits

STATUS_PAGE_LIMIT = 1 << 20
"""The largest status page read (bytes): a master's JSON for hundreds of workers fits."""

T = TypeVar("T")

_TICK = 0.25
"""How often a read blocked on a silent server looks at the cancel and the deadline."""


class WaitStopped(PermanentFailure):
    """The cluster's work was cancelled while waiting."""

    def __init__(self, what: str) -> None:
        super().__init__(f"{what} was stopped: the cluster's work was cancelled")


class WaitTimedOut(PermanentFailure):
    """The step's time ran out while waiting (before the wait's own timeout)."""

    def __init__(self, what: str, seconds: float, detail: str = "") -> None:
        super().__init__(f"{what} timed out after {seconds:.3g} s (the step's time limit)"
                         + (f": {detail}" if detail else ""))
        self.seconds = seconds


class StatusPageError(ValueError):
    """A status page that is not a plain, small enough 200 answer."""


def pause(seconds: float, what: str) -> None:
    """Sleep ``seconds`` at most (no longer than the step has left); ``WaitStopped`` as soon
    as the work is cancelled."""
    if current_limits().wait(seconds):
        raise WaitStopped(what)


class Wait:
    """A polling loop's limit: ``timeout`` seconds from now, or what the step has left if
    that is less (then ``by_step``)."""

    def __init__(self, timeout: float, what: str) -> None:
        self.what = what
        self.timeout = timeout
        self.limits: CommandLimits = current_limits()
        step_left = self.limits.remaining()
        self.by_step = step_left is not None and step_left < timeout
        self.seconds = max(0.0, step_left) if self.by_step and step_left is not None \
            else max(0.0, timeout)
        self.ends = time.monotonic() + self.seconds

    def left(self) -> float:
        return max(0.0, self.ends - time.monotonic())

    def over(self) -> bool:
        return time.monotonic() >= self.ends

    def check(self) -> None:
        if self.limits.stopped():
            raise WaitStopped(self.what)

    def sleep(self, seconds: float) -> None:
        """Sleep ``seconds``, no later than the wait's end; ``WaitStopped`` on a cancel."""
        self.check()
        if self.limits.wait(min(seconds, self.left())):
            raise WaitStopped(self.what)

    def timed_out(self, detail: str = "") -> WaitTimedOut | None:
        """The failure to raise once ``over()`` if the step's limit is what ended the wait;
        None if it was the wait's own timeout (the caller says what that means)."""
        return WaitTimedOut(self.what, self.seconds, detail) if self.by_step else None


def poll(wait: Wait, probe: Callable[[], T | None], *, expired: Callable[[], Exception],
         detail: Callable[[], str] = lambda: "",
         cause: Callable[[], BaseException | None] = lambda: None,
         pause: float = 0.25, max_pause: float | None = None) -> T:
    """``probe()``'s answer once it gives one (not None), polled within ``wait``: first after
    ``pause`` seconds, doubled each time up to ``max_pause`` (default: ``pause``, a steady
    pace). ``probe`` may raise to end the wait early (a daemon that died).

    Once the wait is over: ``WaitTimedOut`` with ``detail()`` if the step's time ended it,
    else ``expired()`` (asked for only then: it may read a log over SSH), either raised from
    ``cause()``. ``WaitStopped`` on a cancel."""
    delay, longest = pause, pause if max_pause is None else max_pause
    while True:
        wait.check()
        answer = probe()
        if answer is not None:
            return answer
        if wait.over():
            cut = wait.timed_out(detail())
            if cut is not None:
                raise cut from cause()
            raise expired() from cause()
        wait.sleep(delay)
        delay = min(2 * delay, longest)


# -- status pages ------------------------------------------------------------------------------


class _BoundedSocket(socket.socket):
    """A connected socket whose reads end at an overall deadline and on the cancel."""

    ends: float
    limits: CommandLimits
    what: str
    seconds: float

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        while True:
            if self.limits.stopped():
                raise WaitStopped(self.what)
            left = self.ends - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no complete answer within {self.seconds:.3g} s")
            super().settimeout(min(left, _TICK))
            try:
                return super().recv_into(buffer, nbytes, flags)
            except TimeoutError:
                continue


class _Connection(http.client.HTTPConnection):
    def __init__(self, host: str, port: int, wait: Wait) -> None:
        super().__init__(host, port, timeout=max(wait.left(), 0.001))
        self.wait = wait

    def connect(self) -> None:
        wait = self.wait
        wait.check()
        if wait.over():
            raise TimeoutError(f"no answer within {wait.seconds:.3g} s")
        raw = socket.create_connection((self.host, self.port), timeout=max(wait.left(), 0.001))
        sock = _BoundedSocket(raw.family, raw.type, raw.proto, fileno=raw.detach())
        sock.settimeout(max(wait.left(), 0.001))  # for sending the request
        sock.ends, sock.limits, sock.what, sock.seconds = (wait.ends, wait.limits, wait.what,
                                                           wait.seconds)
        self.sock = sock


def read_status_page(host: str, port: int, path: str, *, timeout: float,
                     limit: int = STATUS_PAGE_LIMIT) -> bytes:
    """The body of ``GET http://host:port/path``, the whole exchange within ``timeout``
    seconds (and what the step has left). Raises ``TimeoutError`` past that,
    ``StatusPageError`` for anything but a 200 (redirects included: never followed) or a
    body over ``limit`` bytes, ``OSError`` when the node does not answer, and
    ``WaitStopped`` as soon as the step's work is cancelled."""
    shown = f"http://{f'[{host}]' if ':' in host else host}:{port}{path}"
    wait = Wait(timeout, f"reading {shown}")
    connection = _Connection(host, port, wait)
    try:
        connection.request("GET", path, headers={"Accept": "application/json"})
        response = connection.getresponse()
        if 300 <= response.status < 400:
            raise StatusPageError(f"{shown} answered {response.status} {response.reason}"
                                  f" (to {response.getheader('Location', '?')[:200]!r});"
                                  " redirects are not followed")
        if response.status != 200:
            raise StatusPageError(f"{shown} answered {response.status} {response.reason}")
        length = response.getheader("Content-Length")
        if length is not None and length.strip().isdigit() and int(length) > limit:
            raise StatusPageError(f"{shown} announces {int(length)} bytes, more than the"
                                  f" {limit} a status page may have")
        body = response.read(limit + 1)
        if len(body) > limit:
            raise StatusPageError(f"{shown} sent more than the {limit} bytes a status page"
                                  " may have")
        return body
    except http.client.HTTPException as error:
        raise StatusPageError(f"{shown} answered no valid HTTP: {error!r}") from None
    finally:
        connection.close()
