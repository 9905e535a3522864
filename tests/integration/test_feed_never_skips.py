"""The global feed never skips an event, and an append reports what happened (issue 13).

Real processes on the real Cassandra node: four writer processes (four threads each) append
to 300 streams of their own run for about ten seconds, a consumer process tails ``read_feed``
from the feed's end as a checkpoint and applies a projection that counts each stream's
versions, and the truth is every stream read directly. Each scenario below harms the writers,
the relay, the replies or the consumer in its own way, and every one of them ends the same:

- every event every stream holds was delivered: none skipped, the last of each stream too;
- each stream's events arrived in version order, feed positions only grew, and nothing was
  delivered that no stream holds (a duplicate delivery is allowed: at least once);
- the projection holds, for each stream, as many versions as the stream;
- each append's reported outcome is what its stream holds: an append reported done is there
  at the versions reported, an append reported failed is nowhere (only ``OutcomeUnknown``,
  or an append in flight when its writer died, may be either).

The harness (processes, faults, the reply-dropping proxy, the counting) is
``tests/feedchaos.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require_backend
from tests.factories import CASSANDRA_TEST_URL
from tests.feedchaos import (
    AFTER_LWT,
    BEFORE_LWT,
    KILLED,
    RELAY_AFTER_FEED_APPEND,
    RELAY_AFTER_READ,
    Fault,
    Run,
    WriterPlan,
    open_cassandra,
    run_chaos,
    with_params,
)

pytestmark = [pytest.mark.cassandra, pytest.mark.slow,
              pytest.mark.xdist_group("feed-chaos")]


@pytest.fixture(scope="module")
def truth() -> Iterator[Any]:
    """The store the test reads the truth with: it never reads the feed, so never relays."""
    require_backend("cassandra")
    store = open_cassandra(with_params(CASSANDRA_TEST_URL, feed_relay="off"))
    store.upgrade()
    yield store
    store.close()


def chaos(truth: Any, folder: Path, writers: list[WriterPlan], **options: Any) -> Run:
    run = run_chaos(truth, CASSANDRA_TEST_URL, folder, writers, **options)
    print(run.summary())  # shown with -s, and in the report of a failing test
    return run


def assert_never_skips(run: Run) -> None:
    counts = run.counts
    assert counts.written > 500, "the writers hardly wrote: the run proves nothing"
    assert counts.skipped == 0, f"skipped {counts.skipped}, e.g. {counts.examples}"
    assert counts.last_event_missing == 0
    assert counts.out_of_order == 0
    assert counts.wrong == 0
    assert counts.positions_not_increasing == 0
    assert run.projection_wrong == []


def assert_outcomes_match(run: Run) -> None:
    assert run.outcomes.mismatches == []
    assert run.outcomes.succeeded > 0


# -- paused writers and relays -----------------------------------------------------------------

def test_writers_stopped_for_3_s_before_or_after_their_lwt_or_both_skip_nothing(
    truth: Any, tmp_path: Path
) -> None:
    run = chaos(truth, tmp_path, [
        WriterPlan(faults=[Fault(BEFORE_LWT, at=[30, 90])]),
        WriterPlan(faults=[Fault(AFTER_LWT, at=[30, 90])]),
        # Twice in one append: before its LWT, and again once the reply is in (issue 13, 1).
        WriterPlan(faults=[Fault(BEFORE_LWT, at=[40], also=AFTER_LWT)]),
        WriterPlan(),
    ])

    assert_never_skips(run)
    assert_outcomes_match(run)
    stopped = {w["done"]: [f["step"] for f in w["faults"]] for w in run.writers}
    assert stopped == {"w0": [BEFORE_LWT] * 2, "w1": [AFTER_LWT] * 2,
                       "w2": [BEFORE_LWT, AFTER_LWT], "w3": []}


@pytest.mark.parametrize("step", [RELAY_AFTER_READ, RELAY_AFTER_FEED_APPEND])
def test_a_relay_stopped_at_its_steps_even_past_its_lease_skips_nothing(
    truth: Any, tmp_path: Path, step: str
) -> None:
    # Stopped for 1 s (its 3 s lease holds), then for 5 s: the consumer's relay takes over,
    # and the woken relay, fenced out of the feed, must not harm it.
    run = chaos(truth, tmp_path, [WriterPlan(), WriterPlan()],
                relay_faults=[Fault(step, at=[2], seconds=1.0), Fault(step, at=[4], seconds=5.0)])

    assert_never_skips(run)
    assert_outcomes_match(run)
    assert run.relay is not None and len(run.relay["faults"]) >= 1


# -- clocks --------------------------------------------------------------------------------------

@pytest.mark.parametrize("shift", [1.5, 5.0, 30.0])
def test_writers_with_clocks_ahead_and_behind_skip_nothing(
    truth: Any, tmp_path: Path, shift: float
) -> None:
    run = chaos(truth, tmp_path, [WriterPlan(clock_shift=shift), WriterPlan(clock_shift=-shift),
                                  WriterPlan(clock_shift=-shift), WriterPlan()])

    assert_never_skips(run)
    assert_outcomes_match(run)


# -- lost replies --------------------------------------------------------------------------------

def test_an_append_whose_reply_was_lost_after_its_lwt_reached_the_node_reports_the_truth(
    truth: Any, tmp_path: Path
) -> None:
    drops = list(range(20, 2000, 20))
    run = chaos(truth, tmp_path, [
        WriterPlan(proxy=True, faults=[Fault(BEFORE_LWT, at=drops, action="drop_reply")]),
        WriterPlan(), WriterPlan(),
    ])

    assert_never_skips(run)
    assert_outcomes_match(run)
    proxied = next(w for w in run.writers if "proxy_dropped" in w)
    assert proxied["proxy_dropped"] >= 3
    assert proxied["direct_connections"] == 0  # every connection of its driver went through


# -- crashes -------------------------------------------------------------------------------------

def test_writers_killed_at_each_step_leave_no_committed_event_out_of_the_feed(
    truth: Any, tmp_path: Path
) -> None:
    run = chaos(truth, tmp_path, [
        WriterPlan(faults=[Fault(BEFORE_LWT, at=[150], action="kill")]),
        WriterPlan(faults=[Fault(AFTER_LWT, at=[150], action="kill")]),
        # Stopped past the lease-free window first, then killed before settling: issue 13, 3.
        WriterPlan(faults=[Fault(BEFORE_LWT, at=[100], seconds=3.0),
                           Fault(AFTER_LWT, at=[200], action="kill")]),
        WriterPlan(),
    ])

    assert_never_skips(run)
    assert_outcomes_match(run)
    assert run.exit_codes[1:] == [KILLED, KILLED, KILLED, 0]


@pytest.mark.parametrize("step", [RELAY_AFTER_READ, RELAY_AFTER_FEED_APPEND])
def test_a_relay_killed_at_its_steps_is_taken_over_and_the_last_events_still_arrive(
    truth: Any, tmp_path: Path, step: str
) -> None:
    run = chaos(truth, tmp_path, [WriterPlan(), WriterPlan()],
                relay_faults=[Fault(step, at=[10], action="kill")])

    assert_never_skips(run)
    assert_outcomes_match(run)
    assert run.relay is None  # it died at its step, and the consumer's relay took over
    # The successor read what the dead relay had copied without noting it: nothing twice.
    assert run.counts.duplicated == 0


# -- other datacenters ---------------------------------------------------------------------------

def test_a_consumer_reading_at_local_one_as_in_another_datacenter_skips_nothing(
    truth: Any, tmp_path: Path
) -> None:
    run = chaos(truth, tmp_path, [WriterPlan(), WriterPlan(), WriterPlan(), WriterPlan()],
                consumer_params={"consistency": "LOCAL_ONE"})

    assert_never_skips(run)
    assert_outcomes_match(run)
