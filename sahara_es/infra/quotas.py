"""Per-project quotas as claims: a project cannot take more than its share, even in a race.

Each limit is a claim ``quota:<project>:<resource>`` whose capacity is the limit and whose
holders are what holds quota (a cluster id, or a cluster id and an operation for a scale), so
a release names what it gives back and a retried claim by the same holder is recognised.
Because the store grants claims by compare-and-set, twenty clusters created at once by one
project can never exceed its limit together, which a check-then-create could not promise.

::

    QuotaError               (retryable: False) a holder re-claiming a different amount
    QuotaExceeded            a limit would be exceeded: which resource, asked, free, limit

``QuotaExceeded`` is the commands' own (``commands.errors.QuotaExceeded``, a ``Forbidden``
the API answers with 403, not retryable): the one refusal whether a command or a task met
the limit. It is imported here so that ``infra.quotas.QuotaExceeded`` names it too.

Store errors pass through: a ``ConcurrencyConflict`` that outlived every retry is retryable.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields

from sahara_es.commands.errors import QuotaExceeded as QuotaExceeded
from sahara_es.store import Claim, ClaimRejected, ClaimStore, ConcurrencyConflict, NotFound

QUOTA_RESOURCES = ("instances", "cores", "ram_mb")
"""The limited resources, in the order they are claimed."""

DEFAULT_ATTEMPTS = 200


def quota_claim_key(project: str, resource: str) -> str:
    """The store key of one project's limit on one resource."""
    return f"quota:{project}:{resource}"


@dataclass(frozen=True)
class QuotaLimits:
    """A project's limits (Sahara's and Nova's usual defaults for a small project)."""

    instances: int = 20
    cores: int = 40
    ram_mb: int = 81920


@dataclass(frozen=True)
class QuotaUsage:
    """One resource of one project, for display."""

    resource: str
    limit: int
    used: int

    @property
    def free(self) -> int:
        return self.limit - self.used


class QuotaError(Exception):
    retryable: bool = False


class Quotas:
    """Claims and releases per-project quota.

    The limits stored in the claims are the truth once defined: ``defaults`` and
    ``overrides`` only seed a project's claims the first time it is seen, and ``set_limits``
    changes them. Re-applying configured limits at every start would let two processes with
    different configuration undo each other, and bump generations for nothing.
    """

    def __init__(
        self,
        store: ClaimStore,
        defaults: QuotaLimits | None = None,
        overrides: Mapping[str, QuotaLimits] | None = None,
        *,
        attempts: int = DEFAULT_ATTEMPTS,
    ) -> None:
        self.store = store
        self.defaults = defaults or QuotaLimits()
        self.overrides = dict(overrides or {})
        self.attempts = attempts

    def set_limits(self, project: str, limits: QuotaLimits) -> None:
        """Change the project's limits now.

        A limit may be set below what is used: nothing is taken away, new claims are refused
        until enough is released.
        """
        self.overrides[project] = limits
        for resource in QUOTA_RESOURCES:
            key = quota_claim_key(project, resource)
            limit = getattr(limits, resource)
            try:
                if self.store.get_claim(key).capacity == limit:
                    continue
            except NotFound:
                pass
            self.store.define_claim(key, limit)

    def limits(self, project: str) -> QuotaLimits:
        """The project's limits as stored (or as they will be seeded)."""
        return QuotaLimits(**{f.name: self._claim(project, f.name).capacity
                              for f in fields(QuotaLimits)})

    def usage(self, project: str) -> dict[str, QuotaUsage]:
        """Limit and use of each resource, for ``sahara-es quota show`` and the API."""
        usage = {}
        for resource in QUOTA_RESOURCES:
            claim = self._claim(project, resource)
            usage[resource] = QuotaUsage(resource, claim.capacity, claim.used)
        return usage

    def claim(
        self, project: str, holder: str, *, instances: int, cores: int, ram_mb: int
    ) -> None:
        """Take quota for ``holder``, all three resources or none (``QuotaExceeded``).

        Idempotent per holder: a holder that already holds quota (a retried or resumed
        operation) is not charged twice. Resources asked at zero are not claimed.
        """
        asked = {"instances": instances, "cores": cores, "ram_mb": ram_mb}
        if any(amount < 0 for amount in asked.values()):
            raise ValueError(f"quota amounts cannot be negative: {asked}")
        claimed: list[str] = []
        try:
            for resource in QUOTA_RESOURCES:
                if asked[resource] == 0:
                    continue
                if self._claim_one(project, resource, holder, asked[resource]):
                    claimed.append(resource)
        except BaseException:
            for resource in reversed(claimed):
                self._release_one(project, resource, holder)
            raise

    def release(self, project: str, holder: str) -> None:
        """Give back everything ``holder`` holds of the project's quota; a no-op the second
        time."""
        for resource in reversed(QUOTA_RESOURCES):
            self._release_one(project, resource, holder)

    # -- one resource ------------------------------------------------------------------------

    def _claim(self, project: str, resource: str) -> Claim:
        """The claim, defined from the configured limit the first time the project is seen."""
        key = quota_claim_key(project, resource)
        try:
            return self.store.get_claim(key)
        except NotFound:
            limits = self.overrides.get(project, self.defaults)
            return self.store.define_claim(key, getattr(limits, resource))

    def _claim_one(self, project: str, resource: str, holder: str, amount: int) -> bool:
        """Claim ``amount``; whether this call took it (``False``: the holder already held it)."""
        key = quota_claim_key(project, resource)
        last: ConcurrencyConflict | None = None
        for _ in range(self.attempts):
            current = self._claim(project, resource)
            held = current.holders.get(holder)
            if held is not None:
                if held != amount:
                    raise QuotaError(f"{holder} already holds {held} {resource} of project"
                                     f" {project}, not {amount}: a new operation needs a new"
                                     " holder")
                return False
            if current.used + amount > current.capacity:
                raise QuotaExceeded(project, resource, amount, current.free, current.capacity)
            try:
                self.store.claim(key, holder, amount, current.generation)
                return True
            except ConcurrencyConflict as conflict:
                last = conflict  # another claim or release won: re-read and check again
            except ClaimRejected:
                continue  # the next read says why: full now, or held by this holder
        raise last or ConcurrencyConflict(f"claiming {key} for {holder} kept racing")

    def _release_one(self, project: str, resource: str, holder: str) -> None:
        self.store.release_with_retry(quota_claim_key(project, resource), holder, self.attempts)
