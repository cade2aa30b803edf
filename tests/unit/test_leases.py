"""A render worker's lease book (raycollect/render/leases.py), against an in-process queue."""

import asyncio
import itertools

from raycollect.jobs import Lease
from raycollect.render.leases import LeaseBook


class _Queue:
    """Hands out numbered leases and records which ones were heartbeated."""

    def __init__(self):
        self.ids = itertools.count()
        self.extended: list[str] = []

    async def alease(self, worker, n):
        return [Lease(f"j{i}", f"t{i}", {}, 1, 0.0, "q", worker)
                for i in (next(self.ids) for _ in range(n))]

    async def aextend_many(self, leases):
        self.extended += [lease.job_id for lease in leases]
        return [True] * len(leases)


def test_prefetched_leases_are_held_while_the_worker_waits_on_the_driver():
    """A prefetch that lands while the worker is blocked handing frames to a slow driver is
    heartbeated from then on: were it held only when the next batch is taken, its leases
    would lapse during the wait and the jobs render again (seen with a 3 s TTL)."""

    async def scenario():
        q = _Queue()
        book = LeaseBook(q, "w0", 2, lambda lease: "scene")
        first, _ = await book.next_batch()      # leases 4: a batch of 2, 2 buffered
        second, _ = await book.next_batch()     # the buffered 2; a prefetch of 2 starts
        await asyncio.sleep(0)                  # ... and lands while the worker waits
        await asyncio.sleep(0)
        prefetched = {"j4", "j5"}
        assert prefetched <= set(book.held), sorted(book.held)
        beat = asyncio.get_running_loop().create_task(book.heartbeat_forever(0.03))
        await asyncio.sleep(0.05)
        beat.cancel()
        assert prefetched <= set(q.extended), q.extended
        return first, second

    first, second = asyncio.run(scenario())
    assert [lease.job_id for lease in first + second] == ["j0", "j1", "j2", "j3"]
