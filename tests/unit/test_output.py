"""Writing and reading outputs without a browser: shards (tar layout, index, resealing) and
the local sharded writer's crash repair, read back with tarfile and webdataset, not with
raycollect's own reader alone."""

from __future__ import annotations

import io
import json
import tarfile

import numpy as np

from raycollect.output import files, shards
from raycollect.result import Result
from raycollect.output.manifest import FrameReader, read_manifest
from raycollect.output.store import LocalLocation
from raycollect.output.writer import ShardWriter


def _frame(i: int) -> tuple[str, dict, dict]:
    rng = np.random.default_rng(i)
    image = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    depth = rng.random((6, 8), dtype=np.float32)
    return (f"job.{i}", {"image": files.encode_image(image), "depth": files.encode_depth(depth)},
            {"job_id": f"job.{i}"})


def test_a_shard_is_a_tar_whose_index_points_at_each_member():
    frames = [_frame(i) for i in range(3)]
    data, index, names = shards.build(frames)
    index = json.loads(index)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar}
    assert set(members) == set(index)
    for (job_id, fs, _), name in zip(frames, names):
        assert name == {"image": f"job_{job_id[4:]}.png", "depth": f"job_{job_id[4:]}.depth.npy"}
        for kind, member in name.items():
            offset, size = index[member]
            assert data[offset:offset + size] == fs[kind] == members[member]
    kept, kept_index = shards.keep_only(data, {"job_1"})
    with tarfile.open(fileobj=io.BytesIO(kept)) as tar:
        assert sorted(m.name for m in tar) == ["job_1.depth.npy", "job_1.json", "job_1.png"]
    assert set(json.loads(kept_index)) == {"job_1.depth.npy", "job_1.json", "job_1.png"}


def test_the_local_shard_writer_records_a_shard_only_once_it_is_whole(tmp_path):
    import webdataset as wds

    w = ShardWriter(tmp_path, shard_size=2)
    results = []
    for i in range(5):
        job_id, fs, _ = _frame(i)
        r = Result(job_id, {"i": i}, camera={"width": 8}, files=fs)
        w.commit_many([(r, w.stage(r, "tok"))])
        results.append(r)
        # Two shards closed so far hold 2 and 4 frames; the open one is not in the manifest.
        assert len(read_manifest(tmp_path)) == (i + 1) // 2 * 2
    w.close()
    lines = read_manifest(tmp_path)
    assert [m["job_id"] for m in lines] == [r.job_id for r in results]
    reader = FrameReader(tmp_path)
    for m, r in zip(lines, results):
        assert reader.bytes(m, "image") == r.files["image"]
    tars = sorted(str(p) for p in (tmp_path / "shards").glob("*.tar"))
    assert len(tars) == 3
    samples = list(wds.WebDataset(tars, shardshuffle=False))
    assert [s["__key__"] for s in samples] == [shards.sample_key(r.job_id) for r in results]
    # A run that dies with a shard open: the next open removes the shard no line names.
    w2 = ShardWriter(tmp_path, shard_size=10)
    job_id, fs, _ = _frame(9)
    r = Result(job_id, {}, files=fs)
    w2.commit_many([(r, w2.stage(r, "tok"))])
    w2._manifest = None  # the process is gone: nothing closes it
    open_shard = w2._open[0]
    assert (tmp_path / open_shard).exists()
    ShardWriter(tmp_path, shard_size=10).close()
    assert not (tmp_path / open_shard).exists()
    assert len(read_manifest(tmp_path)) == 5


def test_local_location_reads_ranges_and_lists_keys(tmp_path):
    loc = LocalLocation(tmp_path)
    loc.write("a/b.bin", b"0123456789")
    assert loc.read_range("a/b.bin", 3, 4) == b"3456"
    assert loc.list("a/") == ["a/b.bin"] and loc.exists("a/b.bin")
    loc.delete(["a/b.bin"])
    assert loc.list("a/") == []


def test_every_writer_follows_the_declared_interface():
    import inspect

    from raycollect.output.writer import OutputWriter, StoreWriter, Writer

    members = [n for n in vars(Writer) if not n.startswith("_")]
    for cls in (OutputWriter, ShardWriter, StoreWriter):
        for name in members:
            assert hasattr(cls, name) or name in ("url", "done", "loc"), (cls, name)
            ours, theirs = getattr(Writer, name), getattr(cls, name, None)
            if callable(ours) and callable(theirs):
                assert list(inspect.signature(theirs).parameters) == \
                    list(inspect.signature(ours).parameters), (cls, name)
