"""A render worker's leases: the prefetched buffer, the leases it holds, failures, give-back.

This is the bookkeeping half of a render worker (raycollect/render/worker.py); the page half is
raycollect/render/page.py. A lease is held, and heartbeated, from the moment it is leased until the
queue says it has ended: the driver completed it (the frame is recorded), another attempt
took it over, or this worker failed or gave it back. So a frame that waits in the driver for
a slow caller keeps its lease alive, and a lease is never dropped while its frame may still
land.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import Callable, Hashable

from ..errors import QueueUnavailable
from ..jobs import Lease

# Leases a worker keeps in hand beyond the batch it renders, hiding the actor round trip.
PREFETCH_BATCHES = 1
HEARTBEAT_FRACTION = 1 / 3  # extend leases after this fraction of the TTL


def jobs_per_lease(views_per_update: int) -> int:
    """How many jobs a worker leases at once: its next batch and the prefetched one(s)."""
    return views_per_update * (1 + PREFETCH_BATCHES)

log = logging.getLogger(__name__)


class LeaseBook:
    def __init__(self, queue, worker_id: str, batch_size: int,
                 batch_key: Callable[[Lease], Hashable]):
        self.queue, self.id, self.k, self.batch_key = queue, worker_id, batch_size, batch_key
        self.held: dict[str, Lease] = {}
        # Leases in hand with their batch key, computed once per lease when it arrives.
        self._buffer: deque[tuple[Lease, Hashable]] = deque()
        self._prefetch: asyncio.Task | None = None
        self.queue_wait_s = 0.0  # time spent with nothing to render, waiting for leases

    def __len__(self) -> int:
        return len(self.held)

    async def next_batch(self) -> tuple[list[Lease], Hashable | None]:
        """The next batch (consecutive leases sharing the first one's key) and its key. The
        next leases are fetched while this batch renders, hiding the actor round trip."""
        want = jobs_per_lease(self.k)
        if len(self._buffer) < want and self._prefetch is None:
            self._prefetch = asyncio.get_running_loop().create_task(
                self._lease(want - len(self._buffer)))
        if self._prefetch is not None and (not self._buffer or self._prefetch.done()):
            task, self._prefetch = self._prefetch, None
            t0 = time.perf_counter()
            for lease in await task:
                self._buffer.append((lease, self.batch_key(lease)))
            self.queue_wait_s += time.perf_counter() - t0
        if not self._buffer:
            return [], None
        first, key = self._buffer.popleft()
        batch = [first]
        while self._buffer and len(batch) < self.k and self._buffer[0][1] == key:
            batch.append(self._buffer.popleft()[0])
        return batch, key

    async def _lease(self, n: int) -> list[Lease]:
        """Lease n jobs and hold them at once: a prefetch can land while the worker waits on
        the driver (a slow caller) for longer than a lease lasts, and only held leases are
        heartbeated. Holding them when next_batch took them let such leases lapse."""
        leases = await self.queue.alease(self.id, n)
        for lease in leases:
            self.held[lease.job_id] = lease
        return leases

    async def fail(self, leases: list[Lease], error: str, mode: str) -> None:
        """End attempts without frames: "retry", "final" (see raycollect/errors.py)."""
        for lease in leases:
            self.held.pop(lease.job_id, None)
        log.warning("worker %s: %d job(s) %s: %s", self.id, len(leases),
                    "failed" if mode == "final" else "to retry", error.splitlines()[0])
        try:
            await self.queue.afail_many(leases, [error] * len(leases), mode)
        except QueueUnavailable as e:
            log.warning("worker %s: cannot report failures (%s); the leases will expire", self.id, e)

    async def heartbeat_forever(self, ttl: float) -> None:
        while True:
            await asyncio.sleep(ttl * HEARTBEAT_FRACTION)
            leases = list(self.held.values())
            if not leases:
                continue
            try:
                alive = await self.queue.aextend_many(leases)
            except QueueUnavailable as e:
                log.warning("worker %s: heartbeat failed: %s", self.id, e)
                continue
            for lease, ok in zip(leases, alive):
                if not ok:  # recorded, expired or taken over: nothing more to keep alive
                    self.held.pop(lease.job_id, None)

    async def give_back(self) -> None:
        """Return the leases not started (buffered and prefetched) untried."""
        leases = [lease for lease, _ in self._buffer]
        self._buffer.clear()
        if self._prefetch is not None:
            try:
                leases += await self._prefetch
            except QueueUnavailable:
                pass
            self._prefetch = None
        for lease in leases:
            self.held.pop(lease.job_id, None)
        if leases:
            try:
                await self.queue.arelease(leases)
            except QueueUnavailable:
                pass  # they come back when their leases expire
