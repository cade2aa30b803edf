"""WebDataset shards: frames packed into tar files, for outputs of millions of frames.

    shards/<name>.tar            per frame: <key>.png (.webp, .npy: image_format),
                                 <key>.depth.npy, <key>.mask.png, <key>.json (the manifest line)
    shards/<name>.tar.idx.json   {member: [offset of its data, size]}

A sample's key is its job id with "." made "_" (WebDataset takes a member's key up to the first
dot of its name), so `webdataset.WebDataset(...)` and `ray.data.read_webdataset(...)` read the
shards as they are, one sample per frame. The index lets raycollect's own readers fetch one
frame with one ranged read instead of scanning a tar (from an object store, a read per
member). The manifest names each frame's shard and its members; a frame is in the output
exactly when its manifest line is there, as without shards.
"""

from __future__ import annotations

import io
import json
import tarfile
import time
from collections import OrderedDict

from .files import SUFFIXES, suffix

SHARD_INDEX_CACHE = 64  # shard indexes a reader keeps

SHARDS = "shards"
INDEX_SUFFIX = ".idx.json"
_BLOCK = tarfile.BLOCKSIZE


def sample_key(job_id: str) -> str:
    return job_id.replace(".", "_")


def member_names(job_id: str, files: dict[str, bytes]) -> dict[str, str]:
    """{kind: member name} of a frame's files in a shard."""
    key = sample_key(job_id)
    return {kind: key + (suffix(kind, data) if kind == "image" else SUFFIXES[kind])
            for kind, data in files.items()}


class TarBuilder:
    """A tar written front to back into a file object, recording where each member's data
    starts. `finish()` writes the end-of-archive blocks."""

    def __init__(self, fileobj):
        self.f = fileobj
        self.index: dict[str, list[int]] = {}
        self._mtime = int(time.time())

    def add(self, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode = len(data), self._mtime, 0o644
        header = info.tobuf(format=tarfile.PAX_FORMAT)
        self.f.write(header)
        self.index[name] = [self.f.tell(), len(data)]
        self.f.write(data)
        pad = -len(data) % _BLOCK
        if pad:
            self.f.write(b"\0" * pad)

    def add_frame(self, job_id: str, files: dict[str, bytes], record: dict) -> dict[str, str]:
        """A frame's files and its record (<key>.json); returns {kind: member name}."""
        names = member_names(job_id, files)
        for kind, data in files.items():
            self.add(names[kind], data)
        self.add(sample_key(job_id) + ".json", json.dumps(record).encode("utf-8"))
        return names

    def finish(self) -> bytes:
        self.f.write(b"\0" * (2 * _BLOCK))
        return json.dumps(self.index).encode("utf-8")


def build(frames: list[tuple[str, dict[str, bytes], dict]]) -> tuple[bytes, bytes, list[dict]]:
    """A whole shard in memory: (tar bytes, index bytes, {kind: member} per frame)."""
    buf = io.BytesIO()
    tb = TarBuilder(buf)
    names = [tb.add_frame(job_id, files, record) for job_id, files, record in frames]
    index = tb.finish()
    return buf.getvalue(), index, names


def keep_only(tar_bytes: bytes, keys: set[str]) -> tuple[bytes, bytes]:
    """The shard again with only the samples whose keys are in `keys` (a refused attempt's
    frame taken out): (tar bytes, index bytes)."""
    out = io.BytesIO()
    tb = TarBuilder(out)
    with tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r:") as tar:
        for m in tar:
            if m.isfile() and m.name.split(".", 1)[0] in keys:
                tb.add(m.name, tar.extractfile(m).read())
    index = tb.finish()
    return out.getvalue(), index


class IndexCache:
    """Shard indexes read once per reader (a contact sheet or a dataset reads many frames
    of one shard)."""

    def __init__(self, loc, size: int = SHARD_INDEX_CACHE):
        self.loc, self.size = loc, size
        self._cache: OrderedDict[str, dict] = OrderedDict()

    def get(self, shard: str) -> dict:
        if shard not in self._cache:
            self._cache[shard] = json.loads(self.loc.read(shard + INDEX_SUFFIX))
            if len(self._cache) > self.size:
                self._cache.popitem(last=False)
        return self._cache[shard]

    def read(self, shard: str, member: str) -> bytes:
        offset, size = self.get(shard)[member]
        return self.loc.read_range(shard, offset, size)
