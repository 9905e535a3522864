"""Commands on instances over SSH, many nodes at a time, with one connection per node.

Provisioning runs the same step on every node of a cluster: the pool keeps one SSH transport
per node and opens a channel per command on it, so that a hundred commands on a node cost one
handshake. The number of channels open at once is bounded for the whole pool and per node
(an OpenSSH server refuses more than ``MaxSessions``, 10 by default, on one connection).

A command can be bounded from outside the call that runs it: within ``command_limits(timeout,
stop)`` every command the thread runs (those of a ``run_many`` too) ends by the deadline, and
stops as soon as ``stop`` is set. A command that runs past its timeout or is stopped does not
keep running on the node: each command reports its process group first (the remote shell
leads a session of its own), and the pool kills that group (TERM, then KILL) over another
channel before it raises.

What a command prints may end up in events (a failure's stderr), so every text that leaves
this module -- log lines and exception messages -- has the caller's ``secrets`` replaced by
``***``. Host keys are never learned on first use: each ``Node`` carries the key its provider
recorded when it created the instance, and a server presenting another key is refused.

::

    SSHError (InfraError)
    ├── ConnectFailed           no SSH session after the retries (retryable)
    ├── HostKeyMismatch         the server is not the instance the provider created
    ├── RemoteCommandFailed     the command exited non-zero (exit code, output tails)
    ├── RemoteCommandTimeout    the command ran past its timeout (retryable); it was killed
    ├── CommandStopped          its ``command_limits`` stop was set; it was killed
    └── CommandsFailed          ``run_many``: some nodes failed (per-node errors and results)
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import contextvars
import io
import logging
import re
import select
import shlex
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, cast

import paramiko  # type: ignore[import-untyped]
import tenacity
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from sahara_es.infra.base import InfraError, Instance

LOG = logging.getLogger(__name__)

TAIL_BYTES = 4096
"""How much of a failed command's stdout and stderr an exception carries (the end of each)."""

REDACTED = "***"

EOF_GRACE = 2.0
"""Seconds to wait, after a command's exit status, for the end of its output."""

KILL_GRACE = 2.0
"""Seconds a stopped command's processes get between TERM and KILL."""

GROUP_MARK = "sahara-es-pgid"
_REPORT_GROUP = f'echo "{GROUP_MARK} $$" >&2; '
"""Prefixed to every command: sshd starts each command's shell as a session leader, so its
pid is the process group of everything the command starts (daemons that make a session of
their own excepted), and the first line on stderr says which group to kill."""
_GROUP_LINE = re.compile(rb"^" + GROUP_MARK.encode() + rb" (\d+)\n", re.MULTILINE)


# -- nodes and results ----------------------------------------------------------------------


@dataclass(frozen=True)
class Node:
    """Where to reach an instance and the host key it must present."""

    address: str
    port: int
    username: str
    host_key: str
    """The server's public key line, ``"ssh-ed25519 AAAA..."`` (a comment is ignored)."""
    name: str = ""

    @classmethod
    def of(cls, instance: Instance) -> Node:
        """The node of an instance whose provider recorded ``extra["host_key"]``."""
        host_key = instance.extra.get("host_key")
        if not isinstance(host_key, str):
            raise InfraError(f"instance {instance.name} has no recorded host key")
        return cls(instance.address, instance.ssh_port, instance.username, host_key,
                   instance.name)

    @property
    def key(self) -> tuple[str, int, str]:
        return (self.address, self.port, self.username)

    def __str__(self) -> str:
        where = f"{self.username}@{self.address}:{self.port}"
        return f"{self.name} ({where})" if self.name else where


@dataclass(frozen=True)
class CommandResult:
    exit_code: int
    stdout: str
    stderr: str


# -- errors ---------------------------------------------------------------------------------


class SSHError(InfraError):
    pass


class ConnectFailed(SSHError):
    retryable = True


class HostKeyMismatch(SSHError):
    """Not retryable: the address answers with another server's key."""


class RemoteCommandFailed(SSHError):
    def __init__(self, node: Node, command: str, exit_code: int, stdout_tail: str,
                 stderr_tail: str) -> None:
        super().__init__(
            f"{command!r} on {node} exited with {exit_code}: {stderr_tail[-500:].strip()}"
        )
        self.node = node
        self.command = command
        self.exit_code = exit_code
        self.stdout_tail = stdout_tail
        self.stderr_tail = stderr_tail

    def to_dict(self) -> dict[str, Any]:
        """What an event records of the failure (already redacted and bounded)."""
        return {"node": self.node.name or self.node.address, "command": self.command,
                "exit_code": self.exit_code, "stdout_tail": self.stdout_tail,
                "stderr_tail": self.stderr_tail}


class RemoteCommandTimeout(SSHError):
    retryable = True

    def __init__(self, node: Node, command: str, timeout: float, stdout_tail: str,
                 stderr_tail: str) -> None:
        super().__init__(f"{command!r} on {node} did not finish within {timeout:g} s")
        self.node = node
        self.command = command
        self.timeout = timeout
        self.stdout_tail = stdout_tail
        self.stderr_tail = stderr_tail


class CommandStopped(SSHError):
    """Not retryable: the work the command was part of was cancelled."""

    def __init__(self, node: Node, command: str) -> None:
        super().__init__(f"{command!r} on {node} was stopped: its work was cancelled")
        self.node = node
        self.command = command


class CommandsFailed(SSHError):
    """Some nodes of a ``run_many`` failed; the others' results are kept for the caller."""

    def __init__(self, failures: Mapping[Node, SSHError],
                 results: Mapping[Node, CommandResult]) -> None:
        first = next(iter(failures.values()))
        super().__init__(f"{len(failures)} of {len(failures) + len(results)} nodes failed;"
                         f" first: {first}")
        self.failures = dict(failures)
        self.results = dict(results)
        self.retryable = all(failure.retryable for failure in failures.values())


# -- limits set from outside ----------------------------------------------------------------


@dataclass(frozen=True)
class _Limits:
    deadline: float | None = None  # time.monotonic()
    stops: tuple[threading.Event, ...] = ()

    def stopped(self) -> bool:
        return any(stop.is_set() for stop in self.stops)

    def bound(self, timeout: float) -> float:
        if self.deadline is None:
            return timeout
        return max(0.0, min(timeout, self.deadline - time.monotonic()))

    def remaining(self) -> float | None:
        """Seconds left before the deadline (0 once past it); None without a deadline."""
        return None if self.deadline is None else max(0.0, self.deadline - time.monotonic())

    def wait(self, seconds: float) -> bool:
        """Sleep ``seconds`` (no later than the deadline), waking as soon as a stop is set;
        whether one is."""
        ends = time.monotonic() + self.bound(max(0.0, seconds))
        while not self.stopped():
            left = ends - time.monotonic()
            if left <= 0:
                return False
            if len(self.stops) == 1:
                self.stops[0].wait(left)
            else:
                time.sleep(min(left, 0.1))
        return True


CommandLimits = _Limits
NO_LIMITS = _Limits()
_limits: contextvars.ContextVar[_Limits | None] = contextvars.ContextVar("ssh_limits",
                                                                         default=None)


@contextlib.contextmanager
def command_limits(*, timeout: float | None = None,
                   stop: threading.Event | None = None) -> Iterator[None]:
    """Bound every command run in the block (in this thread and a ``run_many``'s): it ends
    within ``timeout`` seconds from now (``RemoteCommandTimeout``), or as soon as ``stop`` is
    set (``CommandStopped``), its remote processes killed either way. Nested limits add up:
    the earliest deadline and every stop count."""
    outer = _limits.get() or NO_LIMITS
    deadline = outer.deadline
    if timeout is not None:
        ends = time.monotonic() + timeout
        deadline = ends if deadline is None else min(deadline, ends)
    token = _limits.set(_Limits(deadline, outer.stops + ((stop,) if stop else ())))
    try:
        yield
    finally:
        _limits.reset(token)


def current_limits() -> CommandLimits:
    """The limits of the ``command_limits`` block the caller runs in (``NO_LIMITS`` outside
    any): what bounds work other than SSH commands too -- a plugin's polling loop or HTTP read
    -- through ``remaining()``, ``stopped()`` and ``wait()`` (``sahara_es.plugins.waits``)."""
    return _limits.get() or NO_LIMITS


# -- helpers --------------------------------------------------------------------------------


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret replaced, longest first so that none is left half-shown."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


def tail(data: bytes, secrets: Iterable[str], size: int = TAIL_BYTES) -> str:
    """The end of an output, decoded and redacted.

    Redaction happens before cutting, so that a secret straddling the cut cannot leak its end.
    """
    return redact(data.decode("utf-8", "replace"), secrets)[-size:]


def generate_keypair(comment: str = "sahara-es") -> tuple[str, str]:
    """A new Ed25519 key pair for a cluster: ``(private key in OpenSSH PEM, public key line)``.

    Through ``cryptography`` because paramiko can load Ed25519 keys but not generate them.
    """
    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                           serialization.PublicFormat.OpenSSH).decode()
    return private, f"{public} {comment}" if comment else public


def load_private_key(pem: str) -> paramiko.PKey:
    """The paramiko key of a PEM, whichever of the usual types it is."""
    errors = []
    for kind in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return kind.from_private_key(io.StringIO(pem))
        except (paramiko.SSHException, ValueError) as error:
            errors.append(f"{kind.__name__}: {error}")
    raise InfraError(f"unreadable private key ({'; '.join(errors)})")


def parse_host_key(line: str) -> paramiko.PKey:
    parts = line.split()
    if len(parts) < 2:
        raise InfraError(f"not a public key line: {line[:40]!r}")
    try:
        return paramiko.PKey.from_type_string(parts[0], base64.b64decode(parts[1]))
    except (binascii.Error, paramiko.SSHException, ValueError) as error:
        raise InfraError(f"not a public key line: {line[:40]!r} ({error})") from error


def shell_exports(env: Mapping[str, str]) -> str:
    """A prefix exporting ``env`` for the whole command line, however many parts it has.

    Exported by the remote shell rather than sent as SSH environment requests, which servers
    drop unless their ``AcceptEnv`` names each variable.
    """
    for name in env:
        if not name.isidentifier():
            raise ValueError(f"not an environment variable name: {name!r}")
    return "".join(f"export {name}={shlex.quote(value)}; " for name, value in env.items())


class _Connection:
    def __init__(self, client: paramiko.SSHClient, per_node: int) -> None:
        self.client = client
        self.slots = threading.BoundedSemaphore(per_node)

    @property
    def transport(self) -> paramiko.Transport:
        return self.client.get_transport()

    def alive(self) -> bool:
        transport = self.client.get_transport()
        return transport is not None and bool(transport.is_active())


# -- the pool -------------------------------------------------------------------------------


class SSHPool:
    """SSH sessions to many nodes with one private key, shared by the threads of a process.

    ``max_sessions`` bounds the channels open at once over all nodes, ``per_node`` those on
    one node's connection. Connecting is retried with jittered backoff (``connect_attempts``
    times) because a node that has just been created may not listen yet; a wrong host key or
    a refused key is not retried.
    """

    def __init__(self, private_key: str | paramiko.PKey, *, max_sessions: int = 16,
                 per_node: int = 8, connect_timeout: float = 10.0, connect_attempts: int = 5,
                 keepalive: int = 30) -> None:
        self._key = (load_private_key(private_key) if isinstance(private_key, str)
                     else private_key)
        self._sessions = threading.BoundedSemaphore(max_sessions)
        self._max_sessions = max_sessions
        self._per_node = per_node
        self._connect_timeout = connect_timeout
        self._connect_attempts = connect_attempts
        self._keepalive = keepalive
        self._lock = threading.Lock()
        self._node_locks: dict[tuple[str, int, str], threading.Lock] = {}
        self._connections: dict[tuple[str, int, str], _Connection] = {}
        self.connections_opened = 0
        """How many SSH connections this pool has made (a reused one is not counted again)."""

    def __enter__(self) -> SSHPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            connections, self._connections = list(self._connections.values()), {}
        for connection in connections:
            connection.client.close()

    def forget(self, node: Node) -> None:
        """Close the node's connection, e.g. once its instance is deleted."""
        with self._lock:
            connection = self._connections.pop(node.key, None)
        if connection is not None:
            connection.client.close()

    # -- connections ----------------------------------------------------------------------

    def _connection(self, node: Node) -> _Connection:
        with self._lock:
            node_lock = self._node_locks.setdefault(node.key, threading.Lock())
        # One thread connects a node while the others wait for its connection to share it.
        with node_lock:
            with self._lock:
                connection = self._connections.get(node.key)
            if connection is not None and connection.alive():
                return connection
            if connection is not None:
                connection.client.close()
            client = self._connect_with_retries(node)
            connection = _Connection(client, self._per_node)
            with self._lock:
                self._connections[node.key] = connection
                self.connections_opened += 1
            return connection

    def _connect_with_retries(self, node: Node) -> paramiko.SSHClient:
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self._connect_attempts),
            wait=tenacity.wait_random_exponential(multiplier=0.2, max=3.0),
            retry=tenacity.retry_if_exception_type(ConnectFailed),
            reraise=True,
        )
        return cast(paramiko.SSHClient, retrying(self._connect, node))

    def _connect(self, node: Node) -> paramiko.SSHClient:
        client = paramiko.SSHClient()
        # Only the key the provider recorded is accepted: no known_hosts, no learning.
        host = node.address if node.port == 22 else f"[{node.address}]:{node.port}"
        expected = parse_host_key(node.host_key)
        client.get_host_keys().add(host, expected.get_name(), expected)
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        try:
            client.connect(node.address, port=node.port, username=node.username,
                           pkey=self._key, timeout=self._connect_timeout,
                           banner_timeout=self._connect_timeout,
                           auth_timeout=self._connect_timeout, allow_agent=False,
                           look_for_keys=False)
        except paramiko.BadHostKeyException as error:
            client.close()
            raise HostKeyMismatch(
                f"{node} presented {error.key.get_name()} {error.key.get_base64()[:16]}...,"
                " not the host key recorded for it"
            ) from None
        except paramiko.AuthenticationException as error:
            client.close()
            raise SSHError(f"{node} refused the key: {error}") from error
        except (OSError, paramiko.SSHException, EOFError) as error:
            client.close()
            raise ConnectFailed(f"cannot reach {node}: {error}") from error
        client.get_transport().set_keepalive(self._keepalive)
        return client

    # -- commands -------------------------------------------------------------------------

    def run(self, node: Node, command: str, *, timeout: float = 300.0,
            env: Mapping[str, str] | None = None, secrets: Sequence[str] = (),
            check: bool = True, stdin: bytes | str | None = None) -> CommandResult:
        """Run ``command`` through the login shell of ``node``; wait at most ``timeout`` (and
        no longer than the ``command_limits`` around the call allow).

        Raises ``RemoteCommandFailed`` on a non-zero exit unless ``check`` is false,
        ``RemoteCommandTimeout`` once the timeout has passed and ``CommandStopped`` once the
        limits' stop is set; in both cases the command's processes on the node are killed.
        """
        # The exports are never shown: only the caller's command line is logged.
        shown = redact(command, secrets)
        line = _REPORT_GROUP + (shell_exports(env) + command if env else command)
        limits = _limits.get() or NO_LIMITS
        timeout = limits.bound(timeout)
        self._check_limits(limits, node, shown, timeout)
        LOG.debug("ssh %s: %s", node, shown)
        connection = self._connection(node)
        started = time.monotonic()
        # The node's slot first: a thread waiting for a busy node holds none of the pool's.
        with self._slot(connection.slots, limits, node, shown, timeout), \
                self._slot(self._sessions, limits, node, shown, timeout):
            try:
                channel = self._open_channel(node, connection)
                remaining = max(0.0, timeout - (time.monotonic() - started))
                exit_code, out, err = self._exec(channel, line, remaining, stdin,
                                                 limits.stopped)
            except _Interrupted as cut:
                self._kill(node, cut.err)
                if cut.stopped:
                    raise CommandStopped(node, shown) from None
                raise RemoteCommandTimeout(node, shown, timeout, tail(cut.out, secrets),
                                           tail(_without_group(cut.err), secrets)) from None
            except (OSError, paramiko.SSHException, EOFError) as error:
                # The connection broke under the command: the next call reconnects.
                self.forget(node)
                raise ConnectFailed(f"{node} dropped the connection during {shown!r}: "
                                    f"{redact(str(error), secrets)}") from None
        err = _without_group(err)
        LOG.debug("ssh %s: exit %d after %.2f s", node, exit_code, time.monotonic() - started)
        if check and exit_code != 0:
            raise RemoteCommandFailed(node, shown, exit_code, tail(out, secrets),
                                      tail(err, secrets))
        return CommandResult(exit_code, out.decode("utf-8", "replace"),
                             err.decode("utf-8", "replace"))

    @staticmethod
    def _check_limits(limits: _Limits, node: Node, shown: str, timeout: float) -> None:
        if limits.stopped():
            raise CommandStopped(node, shown)
        if timeout <= 0:
            raise RemoteCommandTimeout(node, shown, 0, "", "")

    @contextlib.contextmanager
    def _slot(self, semaphore: threading.BoundedSemaphore, limits: _Limits, node: Node,
              shown: str, timeout: float) -> Iterator[None]:
        """Hold ``semaphore``, waiting no longer than the command may run, nor once stopped."""
        deadline = time.monotonic() + timeout
        while not semaphore.acquire(timeout=0.2):
            self._check_limits(limits, node, shown, deadline - time.monotonic())
        try:
            yield
        finally:
            semaphore.release()

    def _kill(self, node: Node, err: bytes) -> None:
        """Kill the process group a cut-off command reported (TERM, then KILL), over a channel
        of its own; a node that cannot be reached any more has nothing left to kill."""
        found = _GROUP_LINE.search(err[:TAIL_BYTES])
        if found is None:
            return  # cut off before its shell started: nothing runs
        group = int(found.group(1))
        rounds = int(KILL_GRACE / 0.1)
        script = (f"kill -TERM -{group} 2>/dev/null || exit 0; i=0; "
                  f"while [ $i -lt {rounds} ] && kill -0 -{group} 2>/dev/null; "
                  f"do sleep 0.1; i=$((i+1)); done; kill -KILL -{group} 2>/dev/null; exit 0")
        try:
            channel = self._open_channel(node, self._connection(node))
            self._exec(channel, script, KILL_GRACE + 10, None, lambda: False)
        except (SSHError, _Interrupted, OSError, paramiko.SSHException, EOFError) as error:
            LOG.warning("could not kill process group %d on %s: %s", group, node, error)

    def _open_channel(self, node: Node, connection: _Connection) -> paramiko.Channel:
        """A channel for one command, reconnecting once if the kept connection went stale.

        Safe to retry: nothing has run yet. A server restarted since the last command leaves
        a transport that looks alive until it is used.
        """
        try:
            return connection.transport.open_session(timeout=self._connect_timeout)
        except (OSError, paramiko.SSHException, EOFError):
            self.forget(node)
        return self._connection(node).transport.open_session(timeout=self._connect_timeout)

    def _exec(self, channel: paramiko.Channel, line: str, timeout: float,
              stdin: bytes | str | None,
              stopped: Callable[[], bool]) -> tuple[int, bytes, bytes]:
        deadline = time.monotonic() + timeout
        out, err = bytearray(), bytearray()
        try:
            channel.settimeout(max(timeout, 0.1))
            channel.exec_command(line)
            if stdin is not None:
                channel.sendall(stdin.encode() if isinstance(stdin, str) else stdin)
            channel.shutdown_write()
            exited: float | None = None
            while True:
                drained = False
                while channel.recv_ready():
                    out += channel.recv(65536)
                    drained = True
                while channel.recv_stderr_ready():
                    err += channel.recv_stderr(65536)
                    drained = True
                if (channel.exit_status_ready() and not channel.recv_ready()
                        and not channel.recv_stderr_ready()):
                    # The exit status may come before the last output: wait for the end of
                    # the output too, briefly (a process left in the background may hold
                    # the stream open for ever).
                    exited = exited or time.monotonic()
                    if channel.eof_received or time.monotonic() - exited > EOF_GRACE:
                        break
                elif stopped():
                    raise _Interrupted(bytes(out), bytes(err), stopped=True)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise _Interrupted(bytes(out), bytes(err), stopped=False)
                if not drained:
                    select.select([channel], [], [], min(remaining, 0.2))
            return int(channel.recv_exit_status()), bytes(out), bytes(err)
        except TimeoutError:  # the channel's own timeout, while sending stdin
            raise _Interrupted(bytes(out), bytes(err), stopped=False) from None
        finally:
            channel.close()

    def put_file(self, node: Node, path: str, content: bytes | str, mode: int = 0o644, *,
                 timeout: float = 60.0) -> None:
        """Write a file on ``node`` atomically (a temporary file renamed over ``path``).

        The content travels on stdin, so it is never part of a command line or a log.
        """
        quoted, temporary = shlex.quote(path), shlex.quote(f"{path}.sahara-es-tmp")
        directory = shlex.quote(path.rsplit("/", 1)[0] or "/") if "/" in path else "."
        self.run(node, f"mkdir -p {directory} && (umask 077; cat > {temporary})"
                       f" && chmod {mode:o} {temporary} && mv -f {temporary} {quoted}",
                 timeout=timeout, stdin=content)

    def run_many(self, nodes: Iterable[Node], command: str | Callable[[Node], str], *,
                 timeout: float = 300.0, env: Mapping[str, str] | None = None,
                 secrets: Sequence[str] = (), check: bool = True) -> dict[Node, CommandResult]:
        """Run a command on every node at once; the results by node.

        ``command`` may be a function of the node, for steps that differ per node. Every node
        runs to its end even when another fails; then, with ``check``, ``CommandsFailed``
        carries the failures and the results of the nodes that succeeded.
        """
        targets = list(dict.fromkeys(nodes))
        if not targets:
            return {}

        def one(node: Node) -> CommandResult:
            line = command(node) if callable(command) else command
            return self.run(node, line, timeout=timeout, env=env, secrets=secrets,
                            check=check)

        results: dict[Node, CommandResult] = {}
        failures: dict[Node, SSHError] = {}
        workers = min(len(targets), self._max_sessions)
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ssh") as executor:
            # Each node's command runs in a copy of the caller's context: its limits hold.
            futures = {node: executor.submit(contextvars.copy_context().run, one, node)
                       for node in targets}
            for node, future in futures.items():
                try:
                    results[node] = future.result()
                except SSHError as error:
                    failures[node] = error
        if failures:
            raise CommandsFailed(failures, results)
        return results


def _without_group(err: bytes) -> bytes:
    """stderr without the line reporting the command's process group."""
    return _GROUP_LINE.sub(b"", err, count=1) if GROUP_MARK.encode() in err else err


class _Interrupted(Exception):
    """A command cut off by its timeout, or ``stopped``; what it printed so far."""

    def __init__(self, out: bytes, err: bytes, *, stopped: bool) -> None:
        super().__init__("stopped" if stopped else "timeout")
        self.out = out
        self.err = err
        self.stopped = stopped
