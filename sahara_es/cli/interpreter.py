"""How the long-running processes (``sahara-es api``, ``sahara-es engine``) set up the
interpreter once they are ready to serve: thread switching and the cyclic garbage collector.

Their work is many threads each woken by I/O: a request's socket, the bus's consumer, the
store driver's replies, a runner handed a finished task. Two interpreter defaults stand in
the way of such a thread answering at once:

- a thread woken while another computes (the API's feed tail decoding, an engine folding a
  history) waits up to the switch interval for the interpreter, at every hop: Python's 5 ms
  becomes ``SWITCH_INTERVAL``;
- a full collection stops every thread while it walks every object the collector tracks
  (about 120,000 once the wake-ups benchmark's process had started its engines; the full
  collections during its start-up took 30-110 ms each); what start-up made (the driver's and
  oslo's modules and metadata, read models loaded from the store) lives as long as the
  process, so it is frozen out of later walks (``gc.freeze``).
"""

from __future__ import annotations

import gc
import sys

SWITCH_INTERVAL = 0.001
"""Seconds a thread runs before the interpreter lets another take it."""


def settle() -> None:
    """Switch threads every ``SWITCH_INTERVAL``, and keep what exists now (collected
    first) out of later collections."""
    sys.setswitchinterval(SWITCH_INTERVAL)
    gc.collect()
    gc.freeze()
