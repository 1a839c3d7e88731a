"""The operator's work queue: de-duplication, one worker per customer, re-queue of work marked while in progress."""

from __future__ import annotations

import threading
import time

from clawhost_localcluster.waiting import eventually
from clawhost_operator.kube_writer import OwnVersions
from clawhost_operator.workqueue import WorkQueue


def test_marks_while_queued_collapse_into_one() -> None:
    queue = WorkQueue()
    for trigger in ("customer", "deployment", "secret"):
        queue.add("a", trigger)
    queue.add("b", "customer")
    assert queue.depth() == 2
    assert queue.get() == ("a", "customer")
    assert queue.get() == ("b", "customer")
    assert queue.depth() == 0


def test_urgent_marks_go_first_and_promote_a_queued_customer() -> None:
    queue = WorkQueue()
    for name in ("a", "b", "c"):
        queue.add(name, "customer")
    queue.add("d", "deployment", urgent=True)
    queue.add("c", "deployment", urgent=True)  # already queued in the normal lane: moves ahead, still once
    assert queue.depth() == 4
    taken = [queue.get() for _ in range(4)]
    assert [item[0] for item in taken if item] == ["d", "c", "a", "b"]
    assert queue.depth() == 0
    queue.add("a", "customer")
    queue.done("a")
    assert queue.get() == ("a", "customer")  # the stale normal-lane entry of "c" was skipped, not served twice


def test_an_urgent_mark_while_in_progress_stays_urgent() -> None:
    queue = WorkQueue()
    queue.add("a", "customer")
    queue.add("b", "customer")
    assert queue.get() == ("a", "customer")
    queue.add("a", "deployment", urgent=True)
    queue.add("a", "resync")
    queue.done("a")
    assert queue.get() == ("a", "deployment")


def test_a_mark_while_in_progress_runs_again_after_done() -> None:
    queue = WorkQueue()
    queue.add("a", "customer")
    assert queue.get() == ("a", "customer")
    queue.add("a", "deployment")  # arrives while "a" is being reconciled: must not start a second worker on it
    queue.add("a", "secret")
    assert queue.depth() == 0
    queue.done("a")
    assert queue.get() == ("a", "deployment")
    queue.done("a")
    assert queue.depth() == 0


def test_a_conditional_mark_gives_way_to_a_real_one() -> None:
    """A deferred first-status look is skipped once no longer needed: a Deployment's turning Ready marked while
    that look is queued or in progress must not be skipped with it (N=1000: one Customer Ready 2 min late)."""
    queue = WorkQueue(conditional=frozenset({"first-status"}))
    queue.add("a", "first-status", urgent=True)
    queue.add("a", "deployment", urgent=True)  # already queued urgent: merged into that entry
    assert queue.get() == ("a", "deployment")
    queue.add("a", "first-status", urgent=True)  # while in progress
    queue.add("a", "deployment", urgent=True)
    queue.done("a")
    assert queue.get() == ("a", "deployment")
    queue.done("a")
    queue.add("b", "customer")
    queue.add("b", "first-status", urgent=True)  # promotes it, but its pass is still the customer's
    queue.add("c", "resync")
    queue.add("c", "deployment", urgent=True)  # promoted by a real mark: runs as that, as before
    assert [queue.get(), queue.get()] == [("b", "customer"), ("c", "deployment")]
    assert queue.depth() == 0


def test_workers_never_run_one_customer_twice_at_once_and_close_stops_them() -> None:
    queue = WorkQueue()
    running: set[str] = set()
    overlaps: list[str] = []
    counts: dict[str, int] = {}
    guard = threading.Lock()
    release = threading.Event()

    def work(name: str, _trigger: str) -> None:
        with guard:
            if name in running:
                overlaps.append(name)
            running.add(name)
            counts[name] = counts.get(name, 0) + 1
        release.wait(5)
        with guard:
            running.discard(name)

    queue.start_workers(4, work)
    for _ in range(50):
        for name in ("a", "b"):
            queue.add(name, "customer")
    eventually(lambda: counts.get("a") == 1 and counts.get("b") == 1, timeout=5, what="both customers started")
    release.set()
    eventually(lambda: queue.depth() == 0 and not running, timeout=5, what="the queue to drain")
    assert overlaps == []
    assert counts["a"] <= 2
    assert counts["b"] <= 2
    queue.close()
    assert queue.get() is None


def test_add_after_releases_in_due_order_into_the_chosen_lane_and_wakes_a_worker() -> None:
    queue = WorkQueue()
    taken: list[tuple[str, str, float]] = []
    started = time.monotonic()

    def work(name: str, trigger: str) -> None:
        taken.append((name, trigger, time.monotonic() - started))

    queue.start_workers(2, work)
    queue.add_after("late", "retry", 0.6)
    queue.add_after("early", "first-status", 0.2, urgent=True)
    assert queue.depth() == 0, "nothing is queued before it is due"
    eventually(lambda: len(taken) == 2, timeout=5, what="both delayed marks to be worked")
    assert [(name, trigger) for name, trigger, _ in taken] == [("early", "first-status"), ("late", "retry")]
    assert taken[0][2] >= 0.2
    assert taken[1][2] >= 0.6
    queue.close()


def test_a_due_urgent_mark_goes_ahead_of_queued_normal_ones() -> None:
    queue = WorkQueue()
    for name in ("a", "b"):
        queue.add(name, "customer")
    queue.add_after("c", "first-status", 0.05, urgent=True)
    eventually(lambda: queue.depth() == 3, timeout=5, what="the delayed mark to be queued")
    assert queue.get() == ("c", "first-status")
    queue.close()


def test_own_versions_are_echoes_once() -> None:
    versions = OwnVersions(limit=2)
    versions.add("10")
    versions.add(None)
    assert not versions.echo("9")
    assert versions.echo("10")
    assert not versions.echo("10"), "an echo is recognised once"
    for version in ("11", "12", "13"):
        versions.add(version)
    assert not versions.echo("11"), "the oldest is forgotten beyond the limit"
    assert versions.echo("12")
    assert versions.echo("13")
