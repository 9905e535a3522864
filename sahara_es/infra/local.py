"""The ``local`` provider: each instance is an OpenSSH server on its own loopback address.

An instance is a folder, ``<root>/instances/<name>/``, and an ``sshd`` started from it. The
folder holds everything another process needs to find the instance again -- its state
(``instance.json``), host key, configuration, pid file and the home of the cluster's
processes -- because the engine that created it may die and another engine delete it.

Addresses come from ``127.10.0.0/16`` (Linux routes all of ``127/8`` to the loopback device,
so binding needs no setup) and are reserved in the store as unique names, so that two
engines on the machine never hand out the same one. Every sshd listens on the same port: the
addresses differ.

Everything started on an instance is found again by two marks. Sessions and what they start
carry ``SAHARA_ES_INSTANCE=<name>`` in their environment (``SetEnv`` in the instance's
sshd_config): processes keep it through ``nohup``, ``setsid`` and double forks, so
``delete_instance`` finds the daemons a session left behind in ``/proc/<pid>/environ``. sshd
itself writes its process title over that memory, so its processes are known by the title
(which names the instance's sshd_config) and by descent from one another. A process that
both clears its environment (``env -i``) and leaves the process tree escapes; that is the
one limit.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import time
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import tenacity

from sahara_es.infra.base import (
    CapacityExhausted,
    Flavor,
    HostInventory,
    InfraError,
    InfraProvider,
    Instance,
    InstanceSpec,
)
from sahara_es.store import NameTaken, Store

MARKER = "SAHARA_ES_INSTANCE"
"""The environment variable that marks every process of an instance with its name."""

ADDRESS_PROJECT = "_infra"
ADDRESS_KIND = "loopback"

FLAVORS = {
    flavor.name: flavor
    for flavor in (
        Flavor("local.small", vcpus=1, ram_mb=1024),
        Flavor("local.medium", vcpus=2, ram_mb=2048),
        Flavor("local.large", vcpus=4, ram_mb=4096),
    )
}

DEFAULT_HOSTS = tuple(HostInventory(f"local-host-{i}", vcpus=8, ram_mb=16384) for i in (1, 2, 3))

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


class InstanceUnreachable(InfraError):
    retryable = True


def instance_processes(name: str, config: Path) -> list[int]:
    """Pids of the live processes of the instance ``name`` whose sshd reads ``config``.

    Two marks, because sshd erases one: it writes its process title over the memory
    ``/proc/<pid>/environ`` shows, so its own processes are known by the title (which names
    ``config``) and by descent from them, and everything else by ``SAHARA_ES_INSTANCE=<name>``
    in its environment, which survives daemonizing. Descendants of either are included, for
    children that cleared their environment without leaving the tree. Processes of other
    users cannot be read without privileges; an instance of ours cannot have started them.
    Zombies are left out: they are dead, and only their parent can reap them.
    """
    marker = f"{MARKER}={name}".encode()
    title = str(config).encode()
    me = os.getpid()
    parents: dict[int, int] = {}
    roots: set[int] = set()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        pid = int(entry.name)
        try:
            with open(f"/proc/{pid}/stat", "rb") as stat:
                # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
                fields = stat.read().rsplit(b")", 1)[1].split()
            if fields[0] == b"Z":
                continue
            parents[pid] = int(fields[1])
            with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                if title in cmdline.read():
                    roots.add(pid)
                    continue
            with open(f"/proc/{pid}/environ", "rb") as environ:
                if marker in environ.read().split(b"\0"):
                    roots.add(pid)
        except (OSError, IndexError, ValueError):  # gone, or not ours to read
            continue
    found = set(roots)
    children: dict[int, list[int]] = {}
    for pid, parent in parents.items():
        children.setdefault(parent, []).append(pid)
    pending = list(roots)
    while pending:
        for child in children.get(pending.pop(), ()):
            if child not in found:
                found.add(child)
                pending.append(child)
    return sorted(found)


def stop_processes(name: str, config: Path, grace: float) -> int:
    """Stop every process of the instance: SIGTERM, then SIGKILL after ``grace`` seconds.

    Scans again after each round, for children forked while their parents were stopping.
    Returns how many processes it signalled.
    """
    signalled: set[int] = set()
    for _ in range(5):
        pids = instance_processes(name, config)
        if not pids:
            return len(signalled)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        signalled.update(pids)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and instance_processes(name, config):
            time.sleep(0.05)
        for pid in instance_processes(name, config):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    if instance_processes(name, config):
        raise InfraError(f"processes of instance {name} survive SIGKILL")
    return len(signalled)


class LocalProvider(InfraProvider):
    """Instances as sshd servers on loopback addresses of this machine.

    Works as any user: the service's own user is the login user of every instance, so it
    needs a login shell (sessions run through it), not ``nologin``. Sessions start in the
    instance's home (``<folder>/home``, also their ``$HOME``), not the user's.
    """

    name = "local"

    def __init__(self, store: Store, *, root: Path | str,
                 hosts: Sequence[HostInventory] | None = None,
                 address_range: str = "127.10.0.0/16", ssh_port: int = 2222,
                 sshd: str = "/usr/sbin/sshd", ssh_keygen: str = "ssh-keygen",
                 stop_grace: float = 5.0, start_timeout: float = 10.0) -> None:
        self._store = store
        self.root = Path(root)
        self._hosts = list(DEFAULT_HOSTS if hosts is None else hosts)
        self._network = ipaddress.IPv4Network(address_range)
        if not self._network.is_loopback:
            raise InfraError(f"{address_range} is not a loopback range")
        self._port = ssh_port
        self._sshd = sshd
        self._ssh_keygen = ssh_keygen
        self._stop_grace = stop_grace
        self._start_timeout = start_timeout
        self._username = pwd.getpwuid(os.getuid()).pw_name

    # -- inventory ------------------------------------------------------------------------

    def flavors(self) -> dict[str, Flavor]:
        return dict(FLAVORS)

    def hosts(self) -> list[HostInventory]:
        return list(self._hosts)

    # -- instances ------------------------------------------------------------------------

    def folder(self, name: str) -> Path:
        if not _NAME.match(name):
            raise InfraError(f"invalid instance name {name!r}")
        return self.root / "instances" / name

    def get_instance(self, name: str) -> Instance | None:
        state = self._read_state(self.folder(name))
        return None if state is None else self._instance(state)

    def list_instances(self) -> list[Instance]:
        """Every instance whose folder is under ``root`` (for cleanup and inspection)."""
        folder = self.root / "instances"
        if not folder.is_dir():
            return []
        states = (self._read_state(entry) for entry in sorted(folder.iterdir()))
        return [self._instance(state) for state in states if state is not None]

    def create_instance(self, spec: InstanceSpec) -> Instance:
        folder = self.folder(spec.name)
        if spec.flavor not in FLAVORS:
            raise InfraError(f"unknown flavor {spec.flavor!r}; local has {sorted(FLAVORS)}")
        if spec.host is not None and spec.host not in {host.name for host in self._hosts}:
            raise InfraError(f"unknown host {spec.host!r}")
        with self._locked(spec.name):
            state = self._read_state(folder)
            if state is None:
                state = self._prepare(folder, spec)
            if self._sshd_pid(folder, state) is None:
                state["pid"] = self._start_sshd(folder, spec.name)
                self._write_state(folder, state)
            return self._instance(state)

    def wait_reachable(self, instance: Instance, timeout: float) -> None:
        """Wait until the address accepts TCP and greets with an SSH banner."""
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_delay(timeout),
            wait=tenacity.wait_random_exponential(multiplier=0.05, max=1.0),
            retry=tenacity.retry_if_exception_type(OSError),
            reraise=True,
        )
        try:
            retrying(_read_banner, instance.address, instance.ssh_port, min(timeout, 5.0))
        except OSError as error:
            raise InstanceUnreachable(
                f"{instance.name} at {instance.address}:{instance.ssh_port} did not answer"
                f" SSH within {timeout:g} s: {error}"
            ) from error

    def delete_instance(self, name: str) -> None:
        folder = self.folder(name)
        with self._locked(name):
            stop_processes(name, folder / "sshd_config", self._stop_grace)
            state = self._read_state(folder) or {}
            for address in {state.get("address"), _read_text(folder / "address.candidate")}:
                if address:
                    self._store.release_name(ADDRESS_PROJECT, ADDRESS_KIND, address, name)
            # The address is free before the folder goes: a delete that dies in between is
            # retried, finds the folder and completes.
            shutil.rmtree(folder, ignore_errors=True)

    # -- creation steps -------------------------------------------------------------------

    def _prepare(self, folder: Path, spec: InstanceSpec) -> dict[str, Any]:
        """Everything but the running sshd: keys, address, configuration, state."""
        home = folder / "home"
        home.mkdir(parents=True, exist_ok=True)
        host_key = folder / "ssh_host_ed25519_key"
        if not host_key.exists():
            subprocess.run([self._ssh_keygen, "-q", "-t", "ed25519", "-N", "", "-C", spec.name,
                            "-f", str(host_key)], check=True, capture_output=True)
        (folder / "authorized_keys").write_text(spec.public_key.strip() + "\n")
        address = self._reserve_address(folder, spec.name)
        (folder / "sshd_config").write_text(self._sshd_config(folder, spec.name, address))
        public = (folder / "ssh_host_ed25519_key.pub").read_text().split()
        state: dict[str, Any] = {
            "name": spec.name,
            "address": address,
            "ssh_port": self._port,
            "username": self._username,
            "host": spec.host,
            "flavor": spec.flavor,
            "host_key": f"{public[0]} {public[1]}",
            "metadata": dict(spec.metadata),
            "pid": None,
            "created_at": time.time(),
        }
        self._write_state(folder, state)
        return state

    def _reserve_address(self, folder: Path, name: str) -> str:
        """A loopback address reserved for ``name`` in the store.

        The search starts at a point given by the name, so that engines creating different
        instances at once rarely race for the same address. Each candidate is written down
        before it is reserved: a creation retried after a crash finds the address it may
        already hold instead of reserving a second one.
        """
        candidate_file = folder / "address.candidate"
        previous = _read_text(candidate_file)
        if previous and self._store.name_owner(ADDRESS_PROJECT, ADDRESS_KIND, previous) == name:
            return previous
        addresses = [address for address in self._network.hosts()
                     if address.packed[-1] not in (0, 255)]
        if not addresses:
            raise CapacityExhausted(f"{self._network} has no usable address")
        start = zlib.crc32(name.encode()) % len(addresses)
        for address in (*addresses[start:], *addresses[:start]):
            candidate = str(address)
            if not _port_free(candidate, self._port):
                continue  # taken outside this store: another service, another test run
            candidate_file.write_text(candidate)
            try:
                self._store.reserve_name(ADDRESS_PROJECT, ADDRESS_KIND, candidate, name)
            except NameTaken as taken:
                if taken.owner_id != name:
                    continue
            return candidate
        raise CapacityExhausted(f"every address of {self._network} is taken")

    def _sshd_config(self, folder: Path, name: str, address: str) -> str:
        home = folder / "home"
        return "\n".join([
            f"ListenAddress {address}",
            f"Port {self._port}",
            f'HostKey "{folder / "ssh_host_ed25519_key"}"',
            f'PidFile "{folder / "sshd.pid"}"',
            f'AuthorizedKeysFile "{folder / "authorized_keys"}"',
            f"AllowUsers {self._username}",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PermitRootLogin prohibit-password",
            # The folder belongs to the service, not to a login user sshd would check.
            "StrictModes no",
            "UsePAM no",
            "PrintMotd no",
            "X11Forwarding no",
            # Provisioning opens many channels on one connection at once.
            "MaxSessions 64",
            "MaxStartups 64:30:256",
            # Marks every session and what it starts; the instance's home is its own.
            f'SetEnv {MARKER}={name} "HOME={home}"',
            'ForceCommand cd "$HOME" && eval "${SSH_ORIGINAL_COMMAND:-exec $SHELL -l}"',
            "",
        ])

    def _start_sshd(self, folder: Path, name: str) -> int:
        """Start the instance's sshd detached from this process; its pid once it listens.

        sshd daemonizes itself (no ``-D``): it is reparented away from this process, which
        neither keeps a zombie of it nor takes it down when it dies.
        """
        if os.geteuid() == 0:
            # Privilege separation needs its empty directory, absent on machines with no
            # system sshd.
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        config = folder / "sshd_config"
        pid_file = folder / "sshd.pid"
        pid_file.unlink(missing_ok=True)
        log = folder / "sshd.log"
        started = subprocess.run(
            [self._sshd, "-f", str(config), "-E", str(log)],
            env={**os.environ, MARKER: name}, start_new_session=True, capture_output=True,
            text=True, cwd=folder, timeout=self._start_timeout,
        )
        if started.returncode != 0:
            raise InfraError(f"sshd of {name} did not start: {started.stderr.strip()}")
        # The pid file is written once the server listens; a bind failure shows in the log.
        deadline = time.monotonic() + self._start_timeout
        while time.monotonic() < deadline:
            pid = _read_text(pid_file)
            if pid and _is_listener(int(pid), config):
                return int(pid)
            if not any(_is_listener(pid, config) for pid in instance_processes(name, config)):
                break
            time.sleep(0.02)
        stop_processes(name, config, self._stop_grace)
        tail = _read_text(log)[-2000:].strip()
        raise InfraError(f"sshd of {name} did not start listening: {tail}")

    def _sshd_pid(self, folder: Path, state: dict[str, Any]) -> int | None:
        """The recorded sshd pid if that process is still this instance's (pids are reused)."""
        pid = state.get("pid")
        if isinstance(pid, int) and _is_listener(pid, folder / "sshd_config"):
            return pid
        return None

    # -- state ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self, name: str) -> Iterator[None]:
        """One creation or deletion of an instance at a time on this machine.

        The lock file lives beside the instance folders so that deletion can remove the folder
        while holding it.
        """
        locks = self.root / "locks"
        locks.mkdir(parents=True, exist_ok=True)
        with open(locks / f"{name}.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    @staticmethod
    def _read_state(folder: Path) -> dict[str, Any] | None:
        try:
            state: dict[str, Any] = json.loads((folder / "instance.json").read_text())
        except FileNotFoundError:
            return None
        return state

    @staticmethod
    def _write_state(folder: Path, state: dict[str, Any]) -> None:
        temporary = folder / "instance.json.tmp"
        temporary.write_text(json.dumps(state, indent=2, sort_keys=True))
        temporary.replace(folder / "instance.json")

    def _instance(self, state: dict[str, Any]) -> Instance:
        folder = self.folder(state["name"])
        return Instance(
            name=state["name"],
            address=state["address"],
            ssh_port=state["ssh_port"],
            username=state["username"],
            host=state["host"],
            flavor=state["flavor"],
            extra={"host_key": state["host_key"], "pid": state["pid"],
                   "folder": str(folder), "home": str(folder / "home"),
                   "metadata": state.get("metadata", {})},
        )


def _read_banner(address: str, port: int, timeout: float) -> None:
    with socket.create_connection((address, port), timeout=timeout) as connection:
        banner = connection.recv(256)
    if not banner.startswith(b"SSH-"):
        raise ConnectionError(f"no SSH banner from {address}:{port}: {banner[:40]!r}")


def _port_free(address: str, port: int) -> bool:
    """Whether a server could listen there (as sshd does: closed connections do not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address, port))
        except OSError:
            return False
    return True


def _read_text(path: Path) -> str:
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        return ""


def _is_listener(pid: int, config: Path) -> bool:
    """Whether ``pid`` is a live sshd started with ``config`` (its title names the file)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return str(config).encode() in cmdline.read()
    except OSError:
        return False
