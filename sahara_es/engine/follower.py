"""Following the global feed under a lease, with a checkpoint: one active follower per name.

A ``FeedFollower`` handles every event of the feed, in feed order, from its checkpoint (the
feed position handled so far, kept in the store as a projection's is, and saved after each
page under the lease). Exactly one follower of a name is active at a time, the holder of the
lease of that name; one that dies, or pauses past its lease, leaves the next to handle the page
again: every event is handled at least once, and twice only for the page a holder was in when
it stopped. The handoff (``engine/handoff.py``) is one; the bus's notifications another.
"""

from __future__ import annotations

import logging
import threading
import time

from sahara_es.events import RecordedEvent
from sahara_es.store import Lease, LeaseHeld, LeaseLost, Store, StoreError

log = logging.getLogger(__name__)

EAGER_SECONDS = 1.0
EAGER_POLL = 0.02
"""After a nudge, the holder reads the feed every ``EAGER_POLL`` for ``EAGER_SECONDS``: the
event it was told of may reach the feed a moment after the nudge (Cassandra's feed is copied
by a relay), and should not then wait for the whole pause."""

GENERATION = 1
"""The checkpoint is kept as a projection's is (``Store.save_checkpoint``), in this one
generation: a follower is never rebuilt, it only goes on."""
PAGE = 500


class FeedFollower:
    """Calls ``handle`` for every event of the feed. ``owner``: who holds the lease (an
    engine's id); ``ttl``: the lease's; ``poll``: the pause when the feed has nothing new
    (``nudge`` ends it at once); ``name``: the lease and checkpoint (one per store);
    ``save_after_acting``: save the checkpoint after every event whose ``handle`` says it
    acted (sent something the world sees), so that a restart repeats at most that one."""

    page = PAGE

    def __init__(self, store: Store, *, owner: str, name: str, ttl: float = 10.0,
                 poll: float = 0.2, save_after_acting: bool = False) -> None:
        self.store = store
        self.owner = owner
        self.ttl = ttl
        self.poll = poll
        self.name = name
        self.save_after_acting = save_after_acting
        self._lease: Lease | None = None
        self._lease_until = 0.0
        self._renewed = float("-inf")  # when the lease was last asked for and answered
        self._position: tuple[int, str | None] | None = None  # (epoch, position)
        self._stop = threading.Event()
        self._nudged = threading.Event()
        self._eager_until = 0.0
        self._thread: threading.Thread | None = None

    def handle(self, event: RecordedEvent) -> bool | None:
        """Act on one event; whether it acted (only ``save_after_acting`` asks)."""
        raise NotImplementedError

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> FeedFollower:
        self._thread = threading.Thread(target=self._loop, name=f"{self.owner} {self.name}",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop, and let another's follower take over at once."""
        self._stop.set()
        self._nudged.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        lease, self._lease, self._lease_until = self._lease, None, 0.0
        if lease is not None:
            try:
                self.store.release_lease(lease)
            except StoreError as error:
                log.warning("could not release the %s lease: %s", self.name, error)

    def nudge(self) -> None:
        """The feed moved: read it now rather than after the pause."""
        self._nudged.set()

    @property
    def active(self) -> bool:
        """Whether this follower may still act under its lease, on its own clock."""
        return time.monotonic() < self._lease_until

    def _loop(self) -> None:
        while not self._stop.is_set():
            pause = self.poll
            if self._nudged.is_set():
                self._nudged.clear()
                self._eager_until = time.monotonic() + EAGER_SECONDS
            try:
                if not self._hold_lease():
                    pause = max(self.poll, self.ttl / 4)  # another's: look again now and then
                elif not self.run_once():
                    pause = 0.0  # more of the feed is waiting
                elif time.monotonic() < self._eager_until:
                    pause = min(self.poll, EAGER_POLL)
            except LeaseLost as error:
                self._lease_until = 0.0
                log.warning("%s %s: another took over: %s", self.name, self.owner, error)
            except StoreError as error:
                log.warning("%s: %s", self.name, error)
            except Exception:
                log.exception("%s failed; trying again", self.name)
            if pause:
                self._nudged.wait(pause)

    def _hold_lease(self) -> bool:
        sent = time.monotonic()
        if sent - self._renewed < self.ttl / 4:
            # Renewed a moment ago: no write on every poll. Or found another's a moment ago:
            # a nudge (every engine hears each command's) does not make a follower that
            # waits ask for the lease again, a write each time, for nothing while its holder
            # lives; one that stopped released it, one that died lets it expire.
            return self.active
        try:
            lease = self.store.acquire_lease(self.name, self.owner, self.ttl)
        except (LeaseHeld, LeaseLost):
            self._renewed = sent
            self._lease_until = 0.0
            return False
        self._renewed = sent
        if self._lease is None or self._lease.epoch != lease.epoch:
            # A new ownership: fence the checkpoint first, so that a former owner paused
            # before its save cannot move it back afterwards (a position is saved only by
            # whoever handled everything before it, so a late save could only make pages be
            # handled twice, never skipped).
            position = self.store.checkpoint(self.name, GENERATION)
            if position is not None:
                self.store.save_checkpoint(self.name, GENERATION, position, fence=lease)
            self._position = (lease.epoch, position)
        self._lease = lease
        # Trusted for half its TTL from when the request left, as the projector's.
        self._lease_until = sent + min(self.ttl / 2, lease.expires_at - time.time())
        return True

    # -- the work -------------------------------------------------------------------------

    def run_once(self) -> bool:
        """Handle one page of the feed from the checkpoint, then save it; whether the feed
        was read to its end."""
        assert self._lease is not None and self._position is not None
        epoch, position = self._position
        batch = self.store.read_feed(position, limit=self.page)
        unsaved = False
        for event in batch:
            if not self.active or self._stop.is_set():
                return True  # the rest is handled again by whoever holds the lease next
            unsaved = True
            if self.handle(event) and self.save_after_acting:
                self._save(epoch, event.position)
                unsaved = False
        if batch and unsaved:
            self._save(epoch, batch[-1].position)
        return len(batch) < self.page

    def _save(self, epoch: int, position: str) -> None:
        assert self._lease is not None
        self.store.save_checkpoint(self.name, GENERATION, position, fence=self._lease)
        self._position = (epoch, position)
