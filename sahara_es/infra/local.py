"""The ``local`` provider: each instance is an OpenSSH server on its own loopback address.

An instance is a folder, ``<root>/instances/<name>/``, and an ``sshd`` started from it. The
folder holds everything another process needs to find the instance again -- its state
(``instance.json``), host key, configuration, pid file and the home of the cluster's
processes -- because the engine that created it may die and another engine delete it.

Addresses come from ``127.10.0.0/16`` (Linux routes all of ``127/8`` to the loopback device,
so binding needs no setup) and are reserved in the store, so that two engines on the machine
never hand out the same one: as unique names (global, SERIAL) on one site, and, for a provider
of a region (``region``, on a keyspace spanning several datacenters), as region-local claims
of one unit per address (``region_claim_key(region, "address:loopback:<address>")``,
LOCAL_SERIAL), which only that region's processes change (doc/regions.rst). Every sshd listens
on the same port: the addresses differ.

Everything started on an instance is found again by two marks. Sessions and what they start
carry ``SAHARA_ES_INSTANCE=<name>`` in their environment (``SetEnv`` in the instance's
sshd_config): processes keep it through ``nohup``, ``setsid`` and double forks, so
``delete_instance`` finds the daemons a session left behind in ``/proc/<pid>/environ``. sshd
itself writes its process title over that memory, so its processes are known by the title
(which names the instance's sshd_config) and by descent from one another. A process that
both clears its environment (``env -i``) and leaves the process tree escapes the deletion of
its instance; the deletion of the cluster's last instance ends it too, with every process of
the cluster's user (a ``kill(-1)`` made as that user, which no re-forking process outruns:
``kill_uid_processes``), before the user goes.

Nodes are a sandbox (``doc/security.rst``). Each cluster gets an unprivileged system user of
its own (``sahara-c-<hash of the cluster id>``), made on its first instance (``useradd
--system``) and removed with its last (``userdel``); sessions log in as that user, never as
the service's. sshd itself runs as root (it must, to switch to the user) and admits only that
user. In the instance folder only the home (``home/``, the user's, 0700) is the user's;
everything else is root's and closed to it (host key, configuration, state, log), except the
authorized keys, which sshd reads as the user. The service therefore runs the local provider
as root, and refuses to when it is not; and it refuses a node user that is privileged (uid 0,
the service's own uid, group 0, or a member of sudo, wheel, adm or root). Nodes reach their
folders only if every folder above the provider's root is traversable by other users: that is
checked, never changed, and a blocking folder is named.

Nodes reach only their own cluster's nodes: per-uid firewall rules (``infra/firewall.py``) let
a node user send within the provider's address range only between its cluster's addresses,
and not to the service's Cassandra ports. The user's rejections are added with the user, each
address's opening with its instance; they go with the instance and the user. Without a
working ``iptables`` the provider refuses to create instances, unless network isolation is
turned off (``network_isolation=False``).
"""

from __future__ import annotations

import contextlib
import fcntl
import grp
import hashlib
import ipaddress
import json
import logging
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
    Image,
    InfraError,
    InfraProvider,
    Instance,
    InstanceSpec,
)
from sahara_es.infra.firewall import NodeFirewall
from sahara_es.infra.locks import file_lock
from sahara_es.store import ClaimRejected, NameTaken, NotFound, Store, region_claim_key

_log = logging.getLogger(__name__)

MARKER = "SAHARA_ES_INSTANCE"
"""The environment variable that marks every process of an instance with its name."""

ADDRESS_PROJECT = "_infra"
ADDRESS_KIND = "loopback"


def address_claim_key(region: str, address: str) -> str:
    """The region-local claim (capacity 1) that reserves ``address`` in ``region``."""
    return region_claim_key(region, f"address:{ADDRESS_KIND}:{address}")

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

DEFAULT_ADDRESS_RANGE = "127.10.0.0/16"

USER_PREFIX = "sahara-c-"
"""Node users are ``sahara-c-`` and 16 hex digits of the cluster id's SHA-256 (25 chars)."""

PRIVILEGED_GROUPS = frozenset({"root", "sudo", "wheel", "adm"})
"""Groups a node user must not be in: they grant root, or read the system's logs."""

NODE_SHELL = "/bin/bash"
"""Sessions run through the user's login shell, so it must be a real one."""


NODE_IMAGE = Image(
    id="50dc2dad-6334-5817-8e66-8e5be00a33ad", name="sahara-es-local-node",
    login_user=f"{USER_PREFIX}<hash of the cluster id>",
    created_at="2026-12-02T00:00:00+00:00")
"""What every local node runs: this machine's system, its Python and the programs the
plugins start, in a folder of its own, logged into as its cluster's unprivileged node user
(one per cluster; see ``node_user``), whatever user a registration names."""

IMAGES = {NODE_IMAGE.id: NODE_IMAGE}
"""The local provider's image catalogue, by id (a fixed id, the same on every machine)."""


def node_user(spec: InstanceSpec) -> str:
    """The cluster's node user: one per cluster (``metadata["cluster"]``), else per instance."""
    return user_of(spec.metadata.get("cluster") or spec.name)


def user_of(owner: str) -> str:
    return USER_PREFIX + hashlib.sha256(owner.encode()).hexdigest()[:16]


SHARE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
"""A share's id (Manila's are UUIDs)."""


def _setfacl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["setfacl", *args], capture_output=True, text=True, check=False)


def _getfacl(path: Path) -> str:
    return subprocess.run(["getfacl", "-p", str(path)], capture_output=True, text=True,
                          check=False).stdout


def traversal_blocker(path: Path) -> Path | None:
    """The first folder from ``/`` down to ``path`` that other users cannot traverse."""
    path = Path(os.path.abspath(path))
    for folder in (*reversed(path.parents), path):
        try:
            mode = folder.stat().st_mode
        except FileNotFoundError:
            return None  # what does not exist yet is made traversable by whoever makes it
        if not mode & 0o001:
            return folder
    return None


def check_unprivileged(user: str) -> pwd.struct_passwd:
    """The user's entry, if it is fit to run tenants' nodes; ``InfraError`` otherwise."""
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise InfraError(f"node user {user} does not exist") from None
    if entry.pw_uid == 0 or entry.pw_uid == os.geteuid() or entry.pw_uid == os.getuid():
        raise InfraError(f"node user {user} has uid {entry.pw_uid}: the service's own or"
                         " root's; tenants' nodes never run as a privileged user")
    gids = set(os.getgrouplist(user, entry.pw_gid))
    names = set()
    for gid in gids:
        with contextlib.suppress(KeyError):
            names.add(grp.getgrgid(gid).gr_name)
    if 0 in gids or names & PRIVILEGED_GROUPS:
        raise InfraError(f"node user {user} is in a privileged group"
                         f" ({', '.join(sorted(names & PRIVILEGED_GROUPS) or ['gid 0'])});"
                         " tenants' nodes never run as a privileged user")
    return entry


def _useradd_contended(error: BaseException) -> bool:
    return isinstance(error, _UserDbBusy)


class _UserDbBusy(Exception):
    """``/etc/passwd`` was locked by another useradd or userdel: try again shortly."""


def _run_user_tool(argv: list[str]) -> subprocess.CompletedProcess[str]:
    """Run useradd/userdel, retrying while another one holds the user database's lock."""
    def attempt() -> subprocess.CompletedProcess[str]:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        if done.returncode != 0 and ("cannot lock" in done.stderr
                                     or "try again" in done.stderr):
            raise _UserDbBusy(done.stderr.strip())
        return done

    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_delay(60),
        wait=tenacity.wait_random_exponential(multiplier=0.05, max=1.0),
        retry=tenacity.retry_if_exception(_useradd_contended),
        reraise=True,
    )
    try:
        return retrying(attempt)
    except _UserDbBusy as busy:
        raise InfraError(f"{argv[0]} could not lock the user database: {busy}") from None


def uid_processes(uid: int) -> list[int]:
    """Every live process whose real, effective or saved uid is ``uid`` (what ``userdel``
    looks for). Zombies are left out: they run nothing, and init reaps them."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/status") as status:
                for line in status:
                    if line.startswith("State:") and line.split()[1] in ("Z", "X"):
                        break
                    if line.startswith("Uid:"):
                        if uid in {int(field) for field in line.split()[1:4]}:
                            found.append(int(entry.name))
                        break
        except (OSError, ValueError, IndexError):
            continue
    return found


def _kill_all_as(uid: int, gid: int) -> bool:
    """``kill(-1, SIGKILL)`` from a child that is ``uid`` and nothing else; whether it was made.

    As an unprivileged user, kill(-1) signals every process of that user but the caller, in
    one pass of the kernel over the process table: a process that forks meanwhile is either
    in the table (and killed) or its fork fails on the signal, so nothing escapes by changing
    pid. The child never returns into the caller's code. A process of the uid may kill the
    child before it signals (it is theirs to signal): then it reports False, to be tried again.
    """
    try:
        pid = os.fork()
    except OSError:  # no pid left (a fork bomb): the caller's kills by pid free some
        return False
    if pid == 0:
        code = 1
        try:
            # Nothing of the service's (store, locks, sockets) goes to the uid, even for this.
            os.closerange(3, os.sysconf("SC_OPEN_MAX"))
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)  # real, effective and saved: root's privileges are gone
            with contextlib.suppress(ProcessLookupError):  # nothing left to kill
                os.kill(-1, signal.SIGKILL)
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def kill_uid_processes(uid: int, gid: int, *, rounds: int = 20, settle: float = 1.0) -> int:
    """End every process of ``uid`` (SIGKILL); ``InfraError`` if some survive ``rounds``.

    A scan of ``/proc`` proves nothing on its own: a process that re-forks under a new pid
    is gone from each pid by the time the scan reads it. So each round kills what a scan
    finds (by pid, as root: this also reaches a root process acting as the uid, and frees
    pids under a fork bomb), then everything of the uid at once (``_kill_all_as``), and waits
    up to ``settle`` seconds for the killed to die. Done after a round whose kill(-1) was
    made and after which a scan finds no live process of the uid: nothing of the uid is left
    to start another (only root could). Returns how many rounds it took.
    """
    if uid <= 0 or uid in (os.getuid(), os.geteuid()):
        raise InfraError(f"refusing to kill the processes of uid {uid}: root's or the service's")
    if os.geteuid() != 0:
        if not uid_processes(uid):
            return 0
        raise InfraError(f"processes of uid {uid} run, and only root may end them (this"
                         f" service runs as uid {os.geteuid()})")
    for round_ in range(1, rounds + 1):
        for pid in uid_processes(uid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        made = _kill_all_as(uid, gid)
        deadline = time.monotonic() + settle
        while (left := uid_processes(uid)) and time.monotonic() < deadline:
            time.sleep(0.02)
        if made and not left:
            return round_
    survivors = uid_processes(uid)
    raise InfraError(f"processes of uid {uid} survive {rounds} rounds of SIGKILL"
                     f" (pids {', '.join(map(str, survivors[:10])) or 'none seen'}); its user"
                     " is kept until they end")


SHARED_FOLDERS = ("/tmp", "/var/tmp", "/dev/shm")
"""World-writable folders where a node user leaves files its uid would hand to the next user."""


def remove_files_of(uid: int, folders: Sequence[str] = SHARED_FOLDERS) -> int:
    """Remove what ``uid`` owns at the top of the shared folders; how many entries went.

    Run once the uid's processes are gone (nothing races it). Entries are judged without
    following symlinks, and folders removed by ``shutil.rmtree``, which resists symlink
    swaps; a folder of the uid goes whole, as its owner could have emptied it.
    """
    removed = 0
    for shared in folders:
        try:
            entries = list(os.scandir(shared))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.stat(follow_symlinks=False).st_uid != uid:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path)
                else:
                    os.unlink(entry.path)
                removed += 1
            except OSError:
                continue
    return removed


USERS_LOCK = Path("/run/lock/sahara-es-users.lock")


def _user_database_locked() -> contextlib.AbstractContextManager[None]:
    """One useradd or userdel at a time on this machine, among sahara-es processes.

    useradd checks that a name is free before it locks the user database, so two at once
    may both add the same name (two uids, one name); the lock closes that window. Tools run
    by others are waited for by the retries in ``_run_user_tool``.
    """
    return file_lock(USERS_LOCK)


def _is_node_uid(uid: int) -> bool:
    try:
        return pwd.getpwuid(uid).pw_name.startswith(USER_PREFIX)
    except KeyError:
        return False


def _uid_of(user: str) -> int | None:
    try:
        return pwd.getpwnam(user).pw_uid
    except KeyError:
        return None


class _UserInUse(Exception):
    """userdel found a process of the user (one started since the last kill)."""


def delete_node_user(user: str, firewall: NodeFirewall | None, *,
                     attempts: int = 5) -> None:
    """Remove a node user, and nothing keyed by its uid before its last process has ended.

    Its uid is the next useradd's, perhaps another project's cluster: first every process of
    it is killed (``kill_uid_processes``), then what it owns at the top of the shared folders
    is removed, then the user (``userdel``, under the user database's lock; should userdel
    still find it in use, its processes are killed again and userdel retried, ``attempts``
    times in all, then ``InfraError``), and only then its firewall rules, before any other
    useradd. Refuses users that are not node users, and privileged ones.
    """
    entry = _node_user_entry(user)
    if entry is None:
        return
    kill_uid_processes(entry.pw_uid, entry.pw_gid)
    remove_files_of(entry.pw_uid)
    with _user_database_locked():
        entry = _node_user_entry(user)
        if entry is None:
            return
        uid, gid = entry.pw_uid, entry.pw_gid

        def attempt() -> subprocess.CompletedProcess[str]:
            kill_uid_processes(uid, gid)
            done = _run_user_tool(["userdel", user])
            if done.returncode == 8:  # "user ... is currently used by process N"
                raise _UserInUse(done.stderr.strip())
            return done

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(attempts),
            wait=tenacity.wait_fixed(0.2),
            retry=tenacity.retry_if_exception_type(_UserInUse),
            reraise=True,
        )
        try:
            done = retrying(attempt)
        except _UserInUse as busy:
            raise InfraError(f"userdel {user} failed {attempts} times, its processes killed"
                             f" before each: {busy}; the user and its rules are kept") from None
        if done.returncode not in (0, 6):  # 6: already gone
            raise InfraError(f"userdel {user} failed: {done.stderr.strip()}")
        if firewall is not None:
            firewall.forget(uid)


def _node_user_entry(user: str) -> pwd.struct_passwd | None:
    """The node user's entry (None if it is gone); ``InfraError`` if it is not a node user."""
    if not user.startswith(USER_PREFIX):
        raise InfraError(f"refusing to remove {user}: not a node user ({USER_PREFIX}*)")
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        return None
    if entry.pw_uid == 0 or entry.pw_uid in (os.getuid(), os.geteuid()):
        raise InfraError(f"refusing to remove privileged user {user}")
    return entry


def authorized_keys_text(public_keys: Sequence[str]) -> str:
    """An ``authorized_keys`` file of these keys, one a line, without duplicates."""
    lines = [line.strip() for key in public_keys for line in key.splitlines() if line.strip()]
    return "".join(f"{line}\n" for line in dict.fromkeys(lines))


def _write_private(path: Path, text: str, mode: int = 0o600) -> None:
    """Write ``text`` to ``path`` with exactly ``mode`` (no umask, no window where it is open)."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.unlink(missing_ok=True)
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.chmod(temporary, mode)
    temporary.replace(path)


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

    Needs root (to make the clusters' node users and start sshd for them) and a root whose
    every parent folder other users may traverse. Sessions log in as the cluster's node user
    and start in the instance's home (``<folder>/home``, also their ``$HOME``).

    ``region``: the region whose machines these are (the engine's, its store's ``local_dc``):
    addresses are then reserved region-locally, at LOCAL_SERIAL, and only that region's
    processes reserve or free them (``ForeignRegion`` elsewhere: an engine of another region
    that took a workflow over cannot free the addresses of the region it took it from). An
    instance records the region it reserved its address in, and is freed there. ``None``: one
    site, addresses as global unique names.
    """

    name = "local"

    def __init__(self, store: Store, *, root: Path | str,
                 hosts: Sequence[HostInventory] | None = None,
                 address_range: str = DEFAULT_ADDRESS_RANGE, ssh_port: int = 2222,
                 sshd: str = "/usr/sbin/sshd", ssh_keygen: str = "ssh-keygen",
                 stop_grace: float = 5.0, start_timeout: float = 10.0,
                 network_isolation: bool = True, region: str | None = None) -> None:
        self._store = store
        self.region = region
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
        # None: the operator turned network isolation off; every node reaches every node.
        self._firewall = NodeFirewall(self._network) if network_isolation else None
        try:
            self.check_sandbox()
            if self._firewall is not None:
                self._firewall.ensure_chains()
                # Rules of uids a crashed process left behind go before any is reused.
                with _user_database_locked():
                    self._firewall.sweep(_is_node_uid)
        except InfraError as unusable:
            # Said at start, raised at each creation: a process that only reads or deletes
            # instances (or uses another provider) may run so.
            _log.warning("the local provider will refuse to create instances: %s", unusable)

    # -- inventory ------------------------------------------------------------------------

    def flavors(self) -> dict[str, Flavor]:
        return dict(FLAVORS)

    def images(self) -> dict[str, Image]:
        return dict(IMAGES)

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

    def check_sandbox(self) -> None:
        """Raise ``InfraError`` saying why nodes could not be sandboxed here, if they could not:
        the service is not root, or a folder above the root is closed to other users."""
        if os.geteuid() != 0:
            raise InfraError(
                "the local provider runs every cluster's nodes as an unprivileged user of its"
                " own, which only root can create (useradd) and start sshd for; this service"
                f" runs as uid {os.geteuid()}: run the engine as root, or use another provider")
        # The root and its "instances" folder are the provider's own (made 0711); above
        # them, nothing is changed, only checked.
        blocker = traversal_blocker(self.root.parent)
        if blocker is not None:
            raise InfraError(
                f"nodes cannot reach their folders under {self.root}: {blocker} is not"
                f" traversable by other users (mode {blocker.stat().st_mode & 0o777:04o});"
                f" choose a root whose parents all have o+x, or chmod o+x {blocker}")

    def create_instance(self, spec: InstanceSpec) -> Instance:
        folder = self.folder(spec.name)
        if spec.flavor not in FLAVORS:
            raise InfraError(f"unknown flavor {spec.flavor!r}; local has {sorted(FLAVORS)}")
        if spec.host is not None and spec.host not in {host.name for host in self._hosts}:
            raise InfraError(f"unknown host {spec.host!r}")
        self.check_sandbox()
        if self._firewall is not None:
            self._firewall.ensure_chains()
        with self._locked(spec.name):
            state = self._read_state(folder)
            user = state["username"] if state else node_user(spec)
            # Shared: instances of a cluster are made in parallel; the deletion of its last
            # instance takes it exclusively to remove the user, so never under a creation.
            with self._user_locked(user, fcntl.LOCK_SH):
                entry = self._ensure_user(user, spec)
                if state is None:
                    state = self._prepare(folder, spec, user)
                if self._firewall is not None:
                    # Before sshd starts: no session runs without the cluster's rules.
                    self._firewall.open_address(entry.pw_uid, state["address"])
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

    def authorize_keys(self, name: str, public_keys: Sequence[str]) -> None:
        """Make ``public_keys`` (OpenSSH lines: the cluster's management key, the user's
        key pair) exactly the keys the instance's sshd accepts, at once and idempotently
        (the file is replaced whole: a session never reads half of it)."""
        folder = self.folder(name)
        with self._locked(name):
            if self._read_state(folder) is None:
                raise InfraError(f"no instance {name}")
            _write_private(folder / "authorized_keys", authorized_keys_text(public_keys),
                           0o644)

    def tenant_view(self, text: str) -> str:
        """An instance's home reads as ``~`` (what its sessions call it), the rest of the
        provider's folder as ``<nodes>``: a cluster's owner learns no path of this machine."""
        for root in dict.fromkeys((str(self.root), os.path.realpath(self.root))):
            text = re.sub(re.escape(root) + r"/instances/[^/\s]+/home(?=/|\b|$)", "~", text)
            text = text.replace(root, "<nodes>")
        return text

    def delete_instance(self, name: str) -> None:
        folder = self.folder(name)
        with self._locked(name):
            stop_processes(name, folder / "sshd_config", self._stop_grace)
            state = self._read_state(folder) or {}
            user = state.get("username") or _read_text(folder / "user")
            addresses = {address for address in (state.get("address"),
                                                 _read_text(folder / "address.candidate"))
                         if address}
            # Where it was reserved: a folder left before its state was written is this
            # provider's; an instance made before addresses had regions holds a name.
            region = state.get("address_region", None if state else self.region)
            uid = _uid_of(user) if user and user.startswith(USER_PREFIX) else None
            if self._firewall is not None and uid is not None:
                # Closed before the address is free for another cluster's instance.
                for address in addresses:
                    self._firewall.close_address(uid, address)
            for address in addresses:
                self._free_address(region, address, name)
            # The address is free before the folder goes, and so is the user if this was its
            # last instance (the folder names it): a delete that fails or dies in between (a
            # process of the user survived every kill) is retried, finds the folder and
            # completes.
            if user and user.startswith(USER_PREFIX):
                self._release_user(user, leaving=name)
            shutil.rmtree(folder, ignore_errors=True)

    # -- node users -----------------------------------------------------------------------

    def _ensure_user(self, user: str, spec: InstanceSpec) -> pwd.struct_passwd:
        """Create the node user unless it exists (another engine may be creating it now),
        and its firewall rejections unless they are there."""
        with _user_database_locked():
            fresh = _uid_of(user) is None
            if fresh:
                self._useradd(user, spec)
            entry = check_unprivileged(user)
            if self._firewall is not None:
                if fresh:
                    # A reused uid: whatever a crashed process left of it is not this user's.
                    self._firewall.forget(entry.pw_uid)
                    self._firewall.sweep(_is_node_uid)
                self._firewall.close_user(entry.pw_uid)
        return entry

    def _useradd(self, user: str, spec: InstanceSpec) -> None:
        owner = spec.metadata.get("cluster") or spec.name
        done = _run_user_tool([
            "useradd", "--system", "--user-group", "--no-create-home",
            # Never the home of a session (each instance's is its own folder), but
            # sshd changes into it first: "/" always exists.
            "--home-dir", "/", "--shell", NODE_SHELL,
            # "*": no password logs in, yet the account is not locked ("!"), which
            # sshd would refuse even with a key.
            "--password", "*",
            "--comment", f"sahara-es nodes of {owner}"[:60], user,
        ])
        if done.returncode not in (0, 9):  # 9: made by another engine meanwhile
            raise InfraError(f"useradd {user} failed: {done.stderr.strip()}")

    # -- shares ---------------------------------------------------------------------------

    def share_path(self, project_id: str, share_id: str, cluster_id: str) -> str:
        """A folder of the machine, ``<root>/shares/<project>/<share id>/``, that the
        project's clusters' node users (each granted on its first use, by POSIX ACLs, the
        files already there included) read and write, and no other user but root: the local
        nodes' Manila share. Its parents are only traversable by others (0711), so that no
        node lists other projects' shares."""
        if not SHARE_ID.fullmatch(share_id):
            raise InfraError(f"{share_id[:80]!r} is not a share id (letters, digits, - and _,"
                             " at most 64)")
        user = user_of(cluster_id)
        if _node_user_entry(user) is None:
            raise InfraError(f"cluster {cluster_id} has no nodes here")
        project = hashlib.sha256(project_id.encode()).hexdigest()[:32]
        folder = self.root / "shares" / project / share_id
        with self._lock_file(f"share-{project}-{share_id}", fcntl.LOCK_EX):
            for level in (folder.parent.parent, folder.parent):
                level.mkdir(mode=0o711, exist_ok=True)
                level.chmod(0o711)
            folder.mkdir(mode=0o700, exist_ok=True)
            if f"user:{user}:" not in _getfacl(folder):
                done = _setfacl("-R", "-m", f"u:{user}:rwX,d:u:{user}:rwX,m::rwX,d:m::rwX",
                                str(folder))
                if done.returncode != 0:
                    raise InfraError(f"cannot share {share_id} with the nodes of cluster"
                                     f" {cluster_id}: {done.stderr.strip()}")
        return str(folder)

    def _revoke_shares(self, user: str) -> None:
        """Take the user's entries out of every share before its uid can be anyone else's."""
        shares = self.root / "shares"
        if not shares.is_dir():
            return
        for folder in shares.glob("*/*"):
            if folder.is_dir() and f"user:{user}:" in _getfacl(folder):
                done = _setfacl("-R", "-x", f"u:{user},d:u:{user}", str(folder))
                if done.returncode != 0:
                    raise InfraError(f"cannot take {user} out of share {folder.name}:"
                                     f" {done.stderr.strip()}")

    def _release_user(self, user: str, leaving: str) -> None:
        """Remove the node user unless an instance under this root other than ``leaving``
        (being deleted) is its: its last process ends first (also those that escaped their
        instance's marks), then what its uid owns in the shared folders, the user and its
        firewall rules (``delete_node_user``)."""
        with self._user_locked(user, fcntl.LOCK_EX):
            if any(folder.name != leaving
                   and (state.get("username") == user or _read_text(folder / "user") == user)
                   for folder, state in self._instance_folders()):
                return
            self._revoke_shares(user)
            delete_node_user(user, self._firewall)

    def _instance_folders(self) -> Iterator[tuple[Path, dict[str, Any]]]:
        folder = self.root / "instances"
        if not folder.is_dir():
            return
        for entry in sorted(folder.iterdir()):
            if entry.is_dir():
                yield entry, self._read_state(entry) or {}

    # -- creation steps -------------------------------------------------------------------

    def _prepare(self, folder: Path, spec: InstanceSpec, user: str) -> dict[str, Any]:
        """Everything but the running sshd: user, keys, address, configuration, state.

        The folder is root's and only traversable (0711) by others; its files are root's
        and 0600, but for the authorized keys, which sshd reads as the user (0644); the home
        is the user's alone (0700).
        """
        entry = pwd.getpwnam(user)
        for made in (self.root, self.root / "instances"):
            made.mkdir(mode=0o711, parents=True, exist_ok=True)
            made.chmod(0o711)
        folder.mkdir(mode=0o711, exist_ok=True)
        folder.chmod(0o711)
        # First, so that a deletion of a half-made instance knows whose it was.
        _write_private(folder / "user", user + "\n")
        home = folder / "home"
        home.mkdir(mode=0o700, exist_ok=True)
        os.chown(home, entry.pw_uid, entry.pw_gid)
        home.chmod(0o700)
        host_key = folder / "ssh_host_ed25519_key"
        if not host_key.exists():
            subprocess.run([self._ssh_keygen, "-q", "-t", "ed25519", "-N", "", "-C", spec.name,
                            "-f", str(host_key)], check=True, capture_output=True)
        host_key.chmod(0o600)
        # The management key, and the user's key pair when the cluster names one
        # (``provisioning.keypair``: the spec's key is then both, one a line).
        _write_private(folder / "authorized_keys", authorized_keys_text([spec.public_key]),
                       0o644)
        address = self._reserve_address(folder, spec.name)
        _write_private(folder / "sshd_config",
                       self._sshd_config(folder, spec.name, address, user))
        public = (folder / "ssh_host_ed25519_key.pub").read_text().split()
        state: dict[str, Any] = {
            "name": spec.name,
            "address": address,
            "address_region": self.region,
            "ssh_port": self._port,
            "username": user,
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
        if previous and name in self._address_holders(previous):
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
            _write_private(candidate_file, candidate)
            if self._take_address(candidate, name):
                return candidate
        raise CapacityExhausted(f"every address of {self._network} is taken")

    def _address_holders(self, address: str) -> set[str]:
        """Who holds ``address`` in the store (at most one)."""
        if self.region is None:
            owner = self._store.name_owner(ADDRESS_PROJECT, ADDRESS_KIND, address)
            return set() if owner is None else {owner}
        try:
            return set(self._store.get_claim(address_claim_key(self.region, address)).holders)
        except NotFound:
            return set()

    def _take_address(self, address: str, name: str) -> bool:
        """Reserve ``address`` for ``name``: whether it is now ``name``'s (again, if it was)."""
        if self.region is None:
            try:
                self._store.reserve_name(ADDRESS_PROJECT, ADDRESS_KIND, address, name)
            except NameTaken as taken:
                return taken.owner_id == name
            return True
        key = address_claim_key(self.region, address)
        try:
            self._store.get_claim(key)
        except NotFound:
            # Racing definers are fine: the first one's insert wins, the others change
            # nothing but the generation, and a claim meanwhile retries on the new one.
            self._store.define_claim(key, 1)
        try:
            self._store.claim_with_retry(key, name, 1)
        except ClaimRejected:
            return False
        return True

    def _free_address(self, region: str | None, address: str, name: str) -> None:
        """Give ``address`` back if ``name`` holds it (in ``region``, where it was reserved)."""
        if region is None:
            self._store.release_name(ADDRESS_PROJECT, ADDRESS_KIND, address, name)
        else:
            self._store.release_with_retry(address_claim_key(region, address), name)

    def _sshd_config(self, folder: Path, name: str, address: str, user: str) -> str:
        home = folder / "home"
        return "\n".join([
            f"ListenAddress {address}",
            f"Port {self._port}",
            f'HostKey "{folder / "ssh_host_ed25519_key"}"',
            f'PidFile "{folder / "sshd.pid"}"',
            f'AuthorizedKeysFile "{folder / "authorized_keys"}"',
            f"AllowUsers {user}",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PermitRootLogin no",
            # The folder is root's, under a temporary folder sshd would call unsafe; the
            # provider sets its modes itself.
            "StrictModes no",
            "UsePAM no",
            "PrintMotd no",
            "X11Forwarding no",
            # Provisioning opens many channels on one connection at once.
            "MaxSessions 64",
            "MaxStartups 64:30:256",
            # Marks every session and what it starts; the instance's home is its own.
            f'SetEnv {MARKER}={name} "HOME={home}"',
            # Whatever a session makes is its user's alone.
            'ForceCommand umask 077; cd "$HOME" && eval "${SSH_ORIGINAL_COMMAND:-exec $SHELL -l}"',
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
        if not log.exists():
            _write_private(log, "")
        # sshd passes none of its environment to sessions, but nothing of the service's
        # (store URLs, credentials files) has business in a tenant's server either.
        environment = {key: os.environ[key] for key in ("PATH", "LANG", "TZ") if key in os.environ}
        started = subprocess.run(
            [self._sshd, "-f", str(config), "-E", str(log)],
            env={**environment, MARKER: name}, start_new_session=True, capture_output=True,
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
        with self._lock_file(f"{name}.lock", fcntl.LOCK_EX):
            yield

    def _user_locked(self, user: str, mode: int) -> contextlib.AbstractContextManager[None]:
        """Creations share a node user's lock; removing the user takes it alone."""
        return self._lock_file(f"user-{user}.lock", mode)

    def _lock_file(self, name: str, mode: int) -> contextlib.AbstractContextManager[None]:
        return file_lock(self.root / "locks" / name, mode, folder_mode=0o700)

    @staticmethod
    def _read_state(folder: Path) -> dict[str, Any] | None:
        try:
            state: dict[str, Any] = json.loads((folder / "instance.json").read_text())
        except FileNotFoundError:
            return None
        return state

    @staticmethod
    def _write_state(folder: Path, state: dict[str, Any]) -> None:
        _write_private(folder / "instance.json", json.dumps(state, indent=2, sort_keys=True))

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
