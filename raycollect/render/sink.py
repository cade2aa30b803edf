"""Where a render worker's encoded frames go before the driver hears of them, chosen once per
worker (`sink_for`) from the run's output:

- `Inline`: the frames' bytes travel in the Results (a local output, or none); the driver
  writes them (raycollect/output/writer.py).
- `Objects`: a store output, one object per pass, written by the worker under names of this
  attempt (frames/<job>.<token><suffix>); only their keys reach the driver.
- `Shards`: a store output with `shard_size`: frames wait in the worker's open shard, which
  is written to the store whole (a tar and its index, under a name no other attempt has)
  when it is full, or when there has been nothing to add to it for SHARD_IDLE_FLUSH s.

Every sink: `put` runs in the worker's encoder thread for each frame (files -> what the
Result carries); `take` gets a rendered batch and says which frames to hand over now; `idle`
is asked while the queue has nothing, and may hand over what waited.
"""

from __future__ import annotations

import asyncio
import secrets
import time

from ..output import files, shards as shard_files
from ..output.writer import sample_record
from ..jobs import Lease
from ..result import Result

# A store output's frame objects carry this many characters of their attempt's lease token.
ATTEMPT_TAG = 12
# A worker with frames in an open shard and nothing to render for this long closes it.
SHARD_IDLE_FLUSH = 1.0


class Inline:
    """The frames' bytes go to the driver in the Results."""

    def __init__(self, clock):
        self.clock = clock

    def put(self, lease: Lease, out: dict) -> tuple[dict, dict | None]:
        """A frame's encoded files -> (the bytes its Result carries, its keys in the store)."""
        return out, None

    async def take(self, frames: list[Result]) -> list[Result]:
        return frames

    async def idle(self) -> list[Result]:
        return []


class Objects(Inline):
    """Each frame's files go to the store as objects of this attempt; their keys travel."""

    def __init__(self, clock, store):
        super().__init__(clock)
        self.store = store

    def put(self, lease: Lease, out: dict) -> tuple[dict, dict | None]:
        s0 = time.perf_counter()
        keys = {}
        for kind, data in out.items():
            key = f"frames/{lease.job_id}.{lease.token[:ATTEMPT_TAG]}{files.suffix(kind, data)}"
            self.store.write(key, data)
            keys[kind] = key
        self.clock.add("store", time.perf_counter() - s0)
        return {}, keys


class Shards(Inline):
    """Frames wait in the worker's open shard until it is written to the store whole."""

    def __init__(self, clock, store, size: int, worker_id: str, executor):
        super().__init__(clock)
        self.store, self.size, self.worker_id, self.executor = store, size, worker_id, executor
        self._open: list[Result] = []
        self._idle_since: float | None = None

    async def take(self, frames: list[Result]) -> list[Result]:
        self._idle_since = None
        self._open += frames
        out = []
        while len(self._open) >= self.size:
            out += await self._close(self.size)
        return out

    async def idle(self) -> list[Result]:
        # Frames waiting in an open shard are shipped once there has been nothing to add to
        # it for a while (the run cannot end while their leases are held).
        self._idle_since = self._idle_since or time.monotonic()
        if self._open and time.monotonic() - self._idle_since >= SHARD_IDLE_FLUSH:
            return await self._close()
        return []

    async def _close(self, size: int | None = None) -> list[Result]:
        """Write the open shard's first `size` frames (all by default) and its index to the
        store, under a name no other attempt has, and hand those frames over: each frame's
        files are now members of the shard."""
        size = len(self._open) if size is None else size
        frames, self._open = self._open[:size], self._open[size:]
        t0 = time.perf_counter()
        name = f"{shard_files.SHARDS}/{self.worker_id}-{secrets.token_hex(8)}.tar"
        records = [(f.job_id, f.files, sample_record(f, f.lease.params)) for f in frames]

        def write() -> list[dict]:
            tar, index, names = shard_files.build(records)
            self.store.write(name, tar)
            self.store.write(name + shard_files.INDEX_SUFFIX, index)
            return names

        names = await asyncio.get_running_loop().run_in_executor(self.executor, write)
        for f, members in zip(frames, names):
            f.files, f.keys, f.shard = {}, members, name
        self.clock.add("store", time.perf_counter() - t0)
        return frames


def sink_for(config, clock, worker_id: str, executor) -> Inline:
    """The sink of a worker of this run's output (`executor`: the worker's encoder thread,
    where shards are built and written)."""
    if not config.to_store:
        return Inline(clock)
    if config.shard_size:
        return Shards(clock, config.location(), config.shard_size, worker_id, executor)
    return Objects(clock, config.location())
