"""Scheduling with claims: the scheduler claims host capacity itself and keeps alternates.

This is the design proposed for Nova's placement service: instead of choosing a host and
hoping the hypervisor still has room when the instance lands, the scheduler *claims* the
resources on the chosen host with a generation-checked compare-and-set, so that two
schedulers racing for the last slot cannot both win. It also returns the ordered runners-up
(*alternates*), so that when creating the instance on the chosen host fails, the workflow moves
the claim to the next host without scheduling again.

Each host's capacity is two claims in the store, ``host:<name>:vcpus`` and
``host:<name>:ram_mb``, held per instance name. The holders map is what makes a resumed
workflow safe: placing an instance that already holds a host's claims returns that placement
instead of claiming a second host.

::

    InfraError
    └── CapacityExhausted
        └── NoValidHost       nothing fits the request (retryable: False)

Store errors pass through: a ``ConcurrencyConflict`` that outlived every retry is retryable.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from sahara_es.infra.base import CapacityExhausted, Flavor, HostInventory
from sahara_es.store import (
    Claim,
    ClaimRejected,
    ConcurrencyConflict,
    NotFound,
    Store,
    region_claim_key,
)

RESOURCES = ("vcpus", "ram_mb")
"""The resources a host gives, in the order they are claimed."""

DEFAULT_ATTEMPTS = 200
"""Re-reads after a conflict before giving up with ``ConcurrencyConflict``. Each conflict
means another scheduler made progress, so this bounds starvation, not correctness."""


def host_claim_key(host: str, resource: str) -> str:
    """The store key of one resource of one host."""
    return f"host:{host}:{resource}"


class NoValidHost(CapacityExhausted):
    """No host can take the request: retrying at once would fail the same way."""

    retryable = False


@dataclass(frozen=True)
class NodeRequest:
    """One instance to place.

    Instances that share an ``anti_affinity_group`` (in Sahara, the instances running one node
    process, such as every ``datanode``) must land on distinct hosts, so that losing one host
    loses one replica, not all of them.
    """

    instance: str
    flavor: Flavor
    anti_affinity_group: str | None = None


@dataclass(frozen=True)
class Placement:
    """Where an instance's resources are claimed, and where to try next if that host fails.

    ``vcpus`` and ``ram_mb`` are the amounts held, so that ``retry_on_alternate`` claims the same
    on the next host without being told the flavor again.
    """

    instance: str
    host: str
    alternates: list[str] = field(default_factory=list)
    vcpus: int = 0
    ram_mb: int = 0


@dataclass(frozen=True)
class HostView:
    """One host's claims as read at one moment: what the filters and weighers look at."""

    name: str
    vcpus: Claim
    ram_mb: Claim

    def fits(self, vcpus: int, ram_mb: int) -> bool:
        return self.vcpus.free >= vcpus and self.ram_mb.free >= ram_mb

    def held_by(self, instance: str) -> bool:
        return instance in self.vcpus.holders or instance in self.ram_mb.holders

    def describe_free(self) -> str:
        return f"{self.name}: {self.vcpus.free} vcpus, {self.ram_mb.free} MB free"


class Scheduler:
    """Places instances on hosts by claiming their capacity in the store.

    Every scheduler over the same store sees the same claims, so any number of them (threads,
    processes, engines) may place concurrently: the store's compare-and-set is the only lock.
    With a ``region`` (the engine's, on a keyspace spanning several datacenters) its hosts are
    that region's and their claims region-local: another region's engine that took a
    workflow over may read them but never claims there (``ForeignRegion``).
    """

    def __init__(
        self,
        store: Store,
        hosts: Sequence[HostInventory],
        *,
        max_alternates: int = 3,
        attempts: int = DEFAULT_ATTEMPTS,
        region: str | None = None,
    ) -> None:
        self.store = store
        self.region = region
        self.hosts = {host.name: host for host in hosts}
        self.max_alternates = max_alternates
        self.attempts = attempts
        self.sync_inventory()

    def claim_key(self, host: str, resource: str) -> str:
        """A host's claim: region-local (``region_claim_key``, LOCAL_SERIAL) when this
        scheduler places in a region of a keyspace spanning several, as only that region's
        processes change its hosts' capacity; else global, as on one site."""
        key = host_claim_key(host, resource)
        return region_claim_key(self.region, key) if self.region else key

    # -- inventory ------------------------------------------------------------------------

    def sync_inventory(self) -> None:
        """Make each host's inventory its claims' capacity, touching only what differs.

        ``define_claim`` bumps the generation, so redefining an unchanged claim at every start
        would make racing schedulers conflict for nothing. A capacity is never set below what is
        used: shrinking a host does not evict the instances already on it, it only stops new
        claims until enough are released.
        """
        for host in self.hosts.values():
            for resource in RESOURCES:
                key = self.claim_key(host.name, resource)
                capacity = int(getattr(host, resource))
                try:
                    current = self.store.get_claim(key)
                except NotFound:
                    self.store.define_claim(key, capacity)
                    continue
                wanted = max(capacity, current.used)
                if current.capacity != wanted:
                    self.store.define_claim(key, wanted)

    def view(self) -> dict[str, HostView]:
        """Every host's claims now."""
        return {name: self._view(name) for name in self.hosts}

    def _view(self, host: str) -> HostView:
        return HostView(
            host,
            self.store.get_claim(self.claim_key(host, "vcpus")),
            self.store.get_claim(self.claim_key(host, "ram_mb")),
        )

    # -- placing --------------------------------------------------------------------------

    def place(
        self,
        requests: Sequence[NodeRequest],
        *,
        avoid: dict[str, set[str]] | None = None,
    ) -> list[Placement]:
        """Claim a host for every request, all or nothing; placements in request order.

        ``avoid`` names, per anti-affinity group, the hosts the group already occupies (the
        cluster's existing nodes, when scaling). Raises ``NoValidHost`` when a request fits
        nowhere; then every claim this call made is released, so a failed cluster creation
        leaves no capacity behind.
        """
        occupied = {group: set(hosts) for group, hosts in (avoid or {}).items()}
        self._check_groups(requests, occupied)
        placements: list[Placement] = []
        made: list[Placement] = []
        hosts = self.view()  # read once; kept current by our own claims, re-read on conflict
        try:
            for request in requests:
                group = request.anti_affinity_group
                taken = occupied.setdefault(group, set()) if group else set()
                placement, claimed = self._place_one(request, taken, hosts)
                if claimed:
                    made.append(placement)
                if group:
                    taken.add(placement.host)
                placements.append(placement)
        except BaseException:
            for placement in reversed(made):
                self.release(placement)
            raise
        return [self._without_group_hosts(p, r, occupied) for p, r in zip(
            placements, requests, strict=True)]

    def _check_groups(
        self, requests: Sequence[NodeRequest], occupied: dict[str, set[str]]
    ) -> None:
        """Fail before claiming anything when a group needs more hosts than exist at all."""
        members: dict[str, set[str]] = {}
        for request in requests:
            if request.anti_affinity_group:
                members.setdefault(request.anti_affinity_group, set()).add(request.instance)
        for group, instances in sorted(members.items()):
            already = occupied.get(group, set())
            needed = len(instances) + len(already)
            if needed > len(self.hosts):
                raise NoValidHost(
                    f"anti-affinity group {group!r} needs {needed} distinct hosts"
                    f" ({len(instances)} new instances, {len(already)} hosts already used),"
                    f" but only {len(self.hosts)} hosts exist"
                )

    def _place_one(
        self, request: NodeRequest, taken: set[str], hosts: dict[str, HostView]
    ) -> tuple[Placement, bool]:
        """Claim one host for ``request``; whether this call made the claim (or found it).

        ``hosts`` is the view the filters use: updated in place from what each claim returns,
        and re-read whole only after a conflict or when every candidate filled up under us.
        """
        vcpus, ram_mb = request.flavor.vcpus, request.flavor.ram_mb
        last: ConcurrencyConflict | None = None
        for attempt in range(self.attempts):
            if attempt:
                hosts.update(self.view())
            held = self._already_held(request, hosts)
            if held is not None:
                alternates = self._candidates(request, hosts, taken | {held})
                return self._placement(request, held, alternates), False
            candidates = self._candidates(request, hosts, taken)
            if not candidates:
                if attempt == 0:
                    continue  # the view may predate releases: read again before refusing
                raise self._no_valid_host(request, hosts, taken)
            try:
                for index, host in enumerate(candidates):
                    try:
                        hosts[host] = self._claim_host(host, request.instance, vcpus, ram_mb,
                                                       hosts[host])
                    except ClaimRejected:
                        # Full since we read it: the next candidate is the fallback.
                        hosts[host] = self._view(host)
                        continue
                    return self._placement(request, host, candidates[index + 1:]), True
            except ConcurrencyConflict as conflict:
                last = conflict  # someone claimed on that host: re-read and re-filter
                continue
            # Every candidate filled up under us; the next read shows who still has room.
        if last is not None:
            raise last
        raise ConcurrencyConflict(f"placing {request.instance} kept racing other schedulers")

    def _already_held(self, request: NodeRequest, hosts: dict[str, HostView]) -> str | None:
        """The host ``request.instance`` already holds both claims on (a resumed workflow).

        A host where only one of the two claims is held was left half-claimed by a scheduler
        that died between the two claims: complete it if it still fits, else give it back.
        """
        vcpus, ram_mb = request.flavor.vcpus, request.flavor.ram_mb
        for name, view in sorted(hosts.items()):
            if not view.held_by(request.instance):
                continue
            if request.instance in view.vcpus.holders and request.instance in view.ram_mb.holders:
                return name
            try:
                for resource, amount in (("vcpus", vcpus), ("ram_mb", ram_mb)):
                    self._claim_with_retry(self.claim_key(name, resource), request.instance,
                                           amount)
            except ClaimRejected:
                self.release(request.instance, name)
                hosts[name] = self._view(name)
                continue
            hosts[name] = self._view(name)
            return name
        return None

    def _candidates(
        self, request: NodeRequest, hosts: dict[str, HostView], excluded: Collection[str]
    ) -> list[str]:
        """Filter (room, anti-affinity), then weigh: most free RAM, then vcpus, spreads load."""
        vcpus, ram_mb = request.flavor.vcpus, request.flavor.ram_mb
        fitting = [view for name, view in hosts.items()
                   if name not in excluded and view.fits(vcpus, ram_mb)]
        fitting.sort(key=lambda view: (-view.ram_mb.free, -view.vcpus.free, view.name))
        return [view.name for view in fitting]

    def _placement(self, request: NodeRequest, host: str, alternates: list[str]) -> Placement:
        return Placement(request.instance, host, alternates[: self.max_alternates],
                         request.flavor.vcpus, request.flavor.ram_mb)

    @staticmethod
    def _without_group_hosts(
        placement: Placement, request: NodeRequest, occupied: dict[str, set[str]]
    ) -> Placement:
        """Drop from the alternates the hosts the group took after this instance was placed,
        so that a retry on an alternate cannot break anti-affinity."""
        if not request.anti_affinity_group:
            return placement
        taken = occupied.get(request.anti_affinity_group, set())
        alternates = [host for host in placement.alternates if host not in taken]
        return Placement(placement.instance, placement.host, alternates, placement.vcpus,
                         placement.ram_mb)

    def _no_valid_host(
        self, request: NodeRequest, hosts: dict[str, HostView], taken: Collection[str]
    ) -> NoValidHost:
        flavor = request.flavor
        asked = (f"{request.instance} (flavor {flavor.name}: {flavor.vcpus} vcpus,"
                 f" {flavor.ram_mb} MB RAM)")
        free = "; ".join(view.describe_free() for _, view in sorted(hosts.items()))
        group = request.anti_affinity_group
        if group and taken:
            others = [view for name, view in hosts.items() if name not in taken]
            fit = sum(1 for view in others if view.fits(flavor.vcpus, flavor.ram_mb))
            return NoValidHost(
                f"no valid host for {asked}: anti-affinity group {group!r} needs"
                f" {len(taken) + 1} distinct hosts, {len(hosts)} exist, {len(taken)} are"
                f" already used by the group and {fit} of the others have room; free: {free}"
            )
        return NoValidHost(f"no valid host for {asked}; free: {free}")

    # -- claiming and releasing -------------------------------------------------------------

    def _claim_host(
        self, host: str, instance: str, vcpus: int, ram_mb: int, seen: HostView
    ) -> HostView:
        """Claim both resources of ``host``, or neither.

        The vcpus claim is checked against the generation the filters saw, so a host that
        changed since is re-read and re-weighed (``ConcurrencyConflict``). Once it is held,
        the ram claim only needs room: a conflict there is retried on a fresh read rather than
        throwing the vcpus claim away.
        """
        cpu = self.store.claim(self.claim_key(host, "vcpus"), instance, vcpus,
                               seen.vcpus.generation)
        try:
            ram = self._claim_with_retry(self.claim_key(host, "ram_mb"), instance, ram_mb)
        except BaseException:
            self._release_key(self.claim_key(host, "vcpus"), instance)
            raise
        return HostView(host, cpu, ram)

    def _claim_with_retry(self, key: str, holder: str, amount: int) -> Claim:
        """Claim, re-reading after conflicts; a holder already holding it gets it back."""
        last: ConcurrencyConflict | None = None
        for _ in range(self.attempts):
            current = self.store.get_claim(key)
            if holder in current.holders:
                return current
            if current.free < amount:
                raise ClaimRejected(f"{key}: {amount} asked, {current.free} of"
                                    f" {current.capacity} free")
            try:
                return self.store.claim(key, holder, amount, current.generation)
            except ConcurrencyConflict as conflict:
                last = conflict
        assert last is not None
        raise last

    def _release_key(self, key: str, holder: str) -> None:
        """Give back what ``holder`` holds of ``key``; nothing held (or no such key) is fine."""
        self.store.release_with_retry(key, holder, self.attempts)

    def release(self, placement: Placement | str, host: str | None = None) -> None:
        """Give an instance's claims on a host back; releasing twice is a no-op.

        Call with a ``Placement``, or with an instance name and its host (what a deleted
        cluster's events record).
        """
        if isinstance(placement, Placement):
            instance, host = placement.instance, placement.host
        else:
            instance = placement
            if host is None:
                raise TypeError("release(instance, host) needs the host")
        for resource in reversed(RESOURCES):
            self._release_key(self.claim_key(host, resource), instance)

    def retry_on_alternate(
        self, placement: Placement, *, avoid: Collection[str] = ()
    ) -> Placement:
        """Move the claim from the host that failed to the next alternate that still has room.

        Creating the instance on ``placement.host`` failed, so that host's claim is given back
        first, then the alternates are tried in order (``avoid``: hosts the instance's
        anti-affinity group took since it was placed). ``NoValidHost`` once none is left.
        """
        placement = self._with_amounts(placement)
        self.release(placement)
        remaining = [host for host in placement.alternates
                     if host != placement.host and host not in avoid]
        for index, host in enumerate(remaining):
            if host not in self.hosts:
                continue
            if self._claim_on(host, placement):
                return Placement(placement.instance, host, remaining[index + 1:],
                                 placement.vcpus, placement.ram_mb)
        raise NoValidHost(
            f"no alternate left for {placement.instance} ({placement.vcpus} vcpus,"
            f" {placement.ram_mb} MB RAM) after {placement.host} failed; tried"
            f" {remaining or 'none'}"
        )

    def _with_amounts(self, placement: Placement) -> Placement:
        """``placement`` with the amounts it holds, read from its host when it was recorded
        without them (a ``Placement(instance, host, alternates)`` rebuilt by a caller)."""
        if placement.vcpus > 0 and placement.ram_mb > 0:
            return placement
        seen = self._view(placement.host)
        vcpus = seen.vcpus.holders.get(placement.instance, placement.vcpus)
        ram_mb = seen.ram_mb.holders.get(placement.instance, placement.ram_mb)
        if vcpus <= 0 or ram_mb <= 0:
            raise ValueError(f"{placement.instance} holds nothing on {placement.host} and the"
                             " placement does not say how much to claim elsewhere")
        return Placement(placement.instance, placement.host, placement.alternates, vcpus,
                         ram_mb)

    def _claim_on(self, host: str, placement: Placement) -> bool:
        """Claim ``placement``'s amounts on ``host``, re-reading after conflicts; whether it fit.

        An instance that already holds the host (a retry resumed) keeps what it holds.
        """
        for _ in range(self.attempts):
            seen = self._view(host)
            if (seen.vcpus.holders.get(placement.instance) == placement.vcpus
                    and seen.ram_mb.holders.get(placement.instance) == placement.ram_mb):
                return True
            if seen.held_by(placement.instance):
                self.release(placement.instance, host)  # half-claimed by a dead scheduler
                continue
            if not seen.fits(placement.vcpus, placement.ram_mb):
                return False
            try:
                self._claim_host(host, placement.instance, placement.vcpus, placement.ram_mb,
                                 seen)
                return True
            except ClaimRejected:
                return False
            except ConcurrencyConflict:
                continue
        raise ConcurrencyConflict(f"claiming {host} for {placement.instance} kept conflicting")
