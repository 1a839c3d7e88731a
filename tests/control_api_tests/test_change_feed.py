"""The Customer cache's change notices: a write from another thread wakes the right listener on its loop."""

from __future__ import annotations

import asyncio
import threading

from clawhost_control_api.kube.changes import ChangeFeed


def test_a_change_from_another_thread_wakes_only_its_customers_listeners() -> None:
    async def scenario() -> None:
        feed = ChangeFeed()
        with feed.listen("alice") as alice, feed.listen("bob") as bob:
            assert feed.listening("alice") == 1
            threading.Thread(target=feed.changed, args=({"alice"},)).start()
            assert await alice.wait(5)
            assert not await bob.wait(0.05)
            for _ in range(3):  # notices that pile up collapse into one wake-up
                feed.changed({"bob"})
            assert await bob.wait(1)
            assert not await bob.wait(0.05)
            feed.everyone()
            assert await alice.wait(1)
            assert await bob.wait(1)
        assert feed.listening("alice") == 0, "a listener that leaves is forgotten"
        feed.changed({"alice"})  # nobody listens: nothing to do, nothing kept

    asyncio.run(scenario())
