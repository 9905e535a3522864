"""Network isolation of the local provider's nodes: firewall rules per node user.

Every local node is a loopback address of one machine, so without rules a node reaches every
port of every other cluster's nodes (a Spark master or Dask scheduler there accepts
unauthenticated work and runs it as *that* cluster's user). The rules below match the uid of
the socket that sends a packet (the ``owner`` match, valid in ``OUTPUT``), so they restrict
the clusters' node users and nobody else: root and the service stay unrestricted.

Chains of their own, jumped to from ``OUTPUT``::

    OUTPUT -> SAHARA-ES-NODES -> SAHARA-ES-NODES-FROM   (what a node user sends from)
                              -> SAHARA-ES-NODES-TO     (what a node user sends to)

For a node user of uid ``U`` and each address ``X`` of its cluster's instances::

    SAHARA-ES-NODES-FROM  -s X/32  --uid-owner U  RETURN   (inserted first)
                          -s RANGE --uid-owner U  REJECT   (appended)
    SAHARA-ES-NODES-TO    -d X/32  --uid-owner U  RETURN   (inserted first)
                          -d RANGE --uid-owner U  REJECT   (appended)
                          -d 127.0.0.0/24 tcp dports SERVICE --uid-owner U  REJECT

so a node user sends only between its own cluster's addresses within the provider's range
(``-d``: it connects to no other cluster's node; ``-s``: a listener it binds on another
cluster's address cannot answer), and not to the service's own ports on 127.0.0.0/24
(Cassandra's). ``RETURN``, not ``ACCEPT``: what is allowed goes on through the rest of
``OUTPUT``, whatever else the machine's administrator put there.

Rules are keyed by uid. Uids are reused by the next ``useradd``, so a uid's rules are removed
before its user is, a freshly made user starts with none (whatever a crash left), and
``sweep`` removes the rules of every uid that is no longer a node user. Every change is
checked first (``-C``) and serialised on the machine by a lock: adding twice adds once.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

from sahara_es.infra.base import InfraError
from sahara_es.infra.locks import file_lock

CHAIN = "SAHARA-ES-NODES"
FROM_CHAIN = "SAHARA-ES-NODES-FROM"
TO_CHAIN = "SAHARA-ES-NODES-TO"

SERVICE_ADDRESSES = "127.0.0.0/24"
"""Where ``tools/cassandra`` runs its nodes (127.0.0.1, then 127.0.0.2...)."""
SERVICE_PORTS = (7000, 7001, 7100, 7199, 9042, 9043, 4369, 4374, 5672, 5682, 25672, 25682)
"""The service's ports there that no node needs: Cassandra's storage (no password), TLS
storage, JMX's usual port (``tools/cassandra`` starts no JMX server) and native protocol
(7100 and 9043: ``tools/cassandra-regions``); RabbitMQ's epmd, AMQP and Erlang distribution
ports (the usual ones, and ``tools/rabbitmq``'s): the bus between API and engines."""

LOCK = Path("/run/lock/sahara-es-firewall.lock")

OFF_HINT = ("install iptables (tools/setup-system), or turn network isolation off"
            " (--no-node-network-isolation, SAHARA_ES_NODE_NETWORK_ISOLATION=off) to accept"
            " that every node reaches every other cluster's nodes")

_UID = re.compile(r"--uid-owner (\d+)\b")


class FirewallUnavailable(InfraError):
    """iptables is missing or failed: the nodes' network isolation cannot be enforced."""


def find_iptables() -> str | None:
    for candidate in (shutil.which("iptables"), "/usr/sbin/iptables", "/sbin/iptables"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


class NodeFirewall:
    """The rules of the local provider's nodes in ``network`` (see the module)."""

    def __init__(self, network: ipaddress.IPv4Network | str, *, iptables: str | None = None,
                 service_ports: Sequence[int] = SERVICE_PORTS) -> None:
        self.network = ipaddress.IPv4Network(network)
        self.iptables = iptables or find_iptables()
        self.service_ports = tuple(service_ports)

    # -- the chains -----------------------------------------------------------------------

    def ensure_chains(self) -> None:
        """Make the chains and the jumps to them unless they are there; ``FirewallUnavailable``
        when iptables is missing or refuses."""
        with self._locked():
            for chain in (CHAIN, FROM_CHAIN, TO_CHAIN):
                if self._run("-n", "-L", chain, check=False).returncode != 0:
                    made = self._run("-N", chain, check=False)
                    if made.returncode != 0 and "exists" not in made.stderr:
                        self._fail(made, ["-N", chain])
            self._ensure([CHAIN, "-j", FROM_CHAIN], append=True)
            self._ensure([CHAIN, "-j", TO_CHAIN], append=True)
            self._ensure(["OUTPUT", "-j", CHAIN], append=False)

    # -- one node user --------------------------------------------------------------------

    def close_user(self, uid: int) -> None:
        """Reject what ``uid`` sends within the range, and to the service's ports."""
        owner = ["-m", "owner", "--uid-owner", str(uid)]
        with self._locked():
            self._ensure([FROM_CHAIN, "-s", str(self.network), *owner, "-j", "REJECT"],
                         append=True)
            self._ensure([TO_CHAIN, "-d", str(self.network), *owner, "-j", "REJECT"],
                         append=True)
            if self.service_ports:
                ports = ",".join(str(port) for port in self.service_ports)
                self._ensure([TO_CHAIN, "-d", SERVICE_ADDRESSES, "-p", "tcp",
                              "-m", "multiport", "--dports", ports, *owner, "-j", "REJECT"],
                             append=True)

    def open_address(self, uid: int, address: str) -> None:
        """Let ``uid`` send to and from ``address`` (an instance of its cluster)."""
        with self._locked():
            for rule in self._address_rules(uid, address):
                self._ensure(rule, append=False)

    def close_address(self, uid: int, address: str) -> None:
        """Take back ``open_address`` (the instance at ``address`` is deleted)."""
        if self.iptables is None:
            return  # nothing was added: deletions never need iptables
        with self._locked():
            for rule in self._address_rules(uid, address):
                while self._run("-C", *rule, check=False).returncode == 0:
                    self._run("-D", *rule)

    def rules(self, uid: int | None = None) -> list[str]:
        """The rules of the chains (``iptables -S`` lines), only ``uid``'s when given."""
        lines: list[str] = []
        if self.iptables is None:
            return lines
        for chain in (FROM_CHAIN, TO_CHAIN):
            listed = self._run("-S", chain, check=False)
            if listed.returncode != 0:
                continue  # no chain, no rules
            for line in listed.stdout.splitlines():
                found = _UID.search(line)
                if line.startswith("-A ") and found and (uid is None or int(found[1]) == uid):
                    lines.append(line)
        return lines

    def forget(self, uid: int) -> int:
        """Remove every rule of ``uid`` (its user goes, or is new); how many went."""
        with self._locked():
            removed = 0
            for line in self.rules(uid):
                self._run("-D", *shlex.split(line)[1:])
                removed += 1
            return removed

    def sweep(self, is_node_uid: Callable[[int], bool]) -> list[int]:
        """Remove the rules of every uid that is no longer a node user; those uids."""
        stale = sorted({int(found[1]) for line in self.rules()
                        if (found := _UID.search(line)) and not is_node_uid(int(found[1]))})
        for uid in stale:
            self.forget(uid)
        return stale

    # -- iptables -------------------------------------------------------------------------

    def _address_rules(self, uid: int, address: str) -> list[list[str]]:
        owner = ["-m", "owner", "--uid-owner", str(uid)]
        host = f"{ipaddress.IPv4Address(address)}/32"
        return [[FROM_CHAIN, "-s", host, *owner, "-j", "RETURN"],
                [TO_CHAIN, "-d", host, *owner, "-j", "RETURN"]]

    def _ensure(self, rule: list[str], *, append: bool) -> None:
        if self._run("-C", *rule, check=False).returncode == 0:
            return
        if append:
            self._run("-A", *rule)
        else:
            self._run("-I", rule[0], "1", *rule[1:])

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        if self.iptables is None:
            raise FirewallUnavailable(
                "network isolation of the local nodes cannot be enforced: iptables is not"
                f" installed; {OFF_HINT}")
        argv = [self.iptables, "-w", *args]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as error:
            raise FirewallUnavailable(
                f"network isolation of the local nodes cannot be enforced: {shlex.join(argv)}"
                f" failed: {error}; {OFF_HINT}") from None
        if check and done.returncode != 0:
            self._fail(done, list(args))
        return done

    def _fail(self, done: subprocess.CompletedProcess[str], args: list[str]) -> None:
        raise FirewallUnavailable(
            "network isolation of the local nodes cannot be enforced:"
            f" iptables {shlex.join(args)} failed ({done.returncode}):"
            f" {done.stderr.strip()[-500:]}; {OFF_HINT}")

    def _locked(self) -> contextlib.AbstractContextManager[None]:
        """One change of the rules at a time among sahara-es processes (check, then add)."""
        return file_lock(LOCK)
