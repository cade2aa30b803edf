"""The labels' pure maths: the page's new blocks, silhouettes counted as BOP counts them,
classes, the amodal file and optical flow (no Ray, no browser)."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

import raycollect as rc
from raycollect import labels
from raycollect.crop import Crop
from raycollect.camera import intrinsics
from raycollect.output import files
from raycollect.render import capture


def _pack_like_the_page(masks: list[np.ndarray]) -> bytes:
    """capture_js/amodal.js's packing, written from its description: ceil(n / 4) planes of H rows
    (bottom-up) of ceil(W / 8) RGBA pixels; channel c of plane a is mask a * 4 + c, bit b of
    byte x is pixel x * 8 + b."""
    h, w = masks[0].shape
    w8 = -(-w // 8)
    planes = np.zeros((-(-len(masks) // 4), h, w8, 4), np.uint8)
    for j, m in enumerate(masks):
        up = m[::-1]
        for x in range(w):
            planes[j // 4, :, x // 8, j % 4] |= (up[:, x].astype(np.uint8) << (x % 8))
    return planes.tobytes()


def test_capture_decodes_float_passes_and_packed_silhouettes():
    w, h = 13, 5  # a width that is not a multiple of 8
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    normals = rng.standard_normal((h, w, 3)).astype(np.float32)
    masks = [rng.random((h, w)) > 0.5 for _ in range(5)]  # 5 ids: two planes
    bits = _pack_like_the_page(masks)
    blocks = [{"name": "rgb", "type": "u8x3", "bytes": rgb.nbytes},
              {"name": "normals", "type": "f32x3", "bytes": normals.nbytes},
              {"name": "amodal", "type": "bits", "bytes": len(bits), "w": w, "h": h,
               "ids": [3, 9, 4, 11, 70]}]
    # An odd header length: the float block starts at an offset no multiple of 4.
    head = json.dumps({"w": w, "h": h, "passes": ["rgb", "normals"], "blocks": blocks,
                       "pad": "x"}).encode()
    assert (8 + len(head) + rgb.nbytes) % 4
    data = b"RCF1" + struct.pack("<I", len(head)) + head + rgb[::-1].tobytes() \
        + normals[::-1].tobytes() + bits
    cap = capture.decode(data)
    assert np.array_equal(cap.rgb, rgb)
    assert np.array_equal(cap.normals, normals)
    assert sorted(cap.amodal) == [3, 4, 9, 11, 70]
    for i, m in zip([3, 9, 4, 11, 70], masks):
        assert np.array_equal(cap.amodal[i].full(h, w), m), i
    with pytest.raises(rc.RenderError):  # a block list that does not add up
        capture.decode(data[:-1])


def test_silhouettes_count_on_bops_threefold_canvas():
    h, w = 4, 6
    mask = np.zeros((h, w), np.uint32)
    mask[1, 1:3] = 7  # seen: 2 pixels
    inner = {7: np.zeros((h, w), bool), 8: np.zeros((h, w), bool)}
    inner[7][1, 1:5] = True  # its silhouette in the image: 4 pixels (2 hidden)
    inner[8][0:2, 0] = True  # cut by the image's left border
    outer = {8: np.zeros((3 * h, 3 * w), bool)}
    outer[8][h:h + 2, w - 3:w + 1] = True  # 3 columns left of the image, 1 inside
    inner = {i: Crop.of(m) for i, m in inner.items()}
    outer = {i: Crop.of(m) for i, m in outer.items()}
    masks, stats = labels.silhouettes(inner, outer, mask)
    assert stats[7] == (4, [1, 1, 4, 1])
    assert stats[8] == (8, [-3, 0, 4, 2])  # a box that starts left of the image
    assert masks[7].full(h, w).sum() == 4 and masks[8].full(h, w).sum() == 2
    assert masks[7].box == [1, 1, 4, 1]
    # An id with pixels but no silhouette of its own (points, lines) is what it shows.
    mask[3, 5] = 9
    _, stats = labels.silhouettes(inner, outer, mask)
    assert stats[9] == (1, [5, 3, 1, 1])
    objects = labels.objects({"a": {"pose": list(np.eye(4).ravel())}}, mask, {"a": 7},
                             {"a": "mug"}, {"a": {"tag": "Box"}}, stats)
    assert objects["a"]["class"] == "mug" and objects["a"]["visib_fract"] == 0.5
    assert objects["a"]["px_all"] == 4 and objects["a"]["bbox_all"] == [1, 1, 4, 1]


def test_amodal_file_round_trips_and_classes_fall_back():
    rng = np.random.default_rng(1)
    masks = {i: rng.random((7, 11)) > 0.3 for i in (2, 5, 300)}
    masks[7] = np.zeros((7, 11), bool)  # an object with no silhouette at all
    masks[9] = np.zeros((7, 11), bool)
    masks[9][2:4, 3:12] = True  # a box 9 wide (two bytes a row), to the right edge
    back = files.decode("amodal", files.encode_amodal(masks))
    assert back.keys() == masks.keys()
    assert all(np.array_equal(back[i], masks[i]) for i in masks)
    assert files.suffix("amodal", b"") == ".amodal.npz"
    assert labels.class_of("mug_1", {"mug_1": "mug"}) == "mug"
    assert labels.class_of("mug_2", {"mug_1": "mug"}) == "mug_2"
    assert labels.class_of("arm/link3", {"arm": "robot"}) == "robot"
    assert labels.class_of("arm/link3", lambda k: "gripper" if k.endswith("3") else None) == "gripper"
    assert labels.class_of("x", None) == "x"
    with pytest.raises(ValueError):
        labels.class_of("x", lambda k: 5)
    with pytest.raises(ValueError, match="masks"):
        rc.Config(amodal=True)


def _frame(camera_matrix, pose, w=40, h=30, fov=50.0):
    """A frame of one square (id 1) in its frame's z = 0 plane, 1 m on a side, drawn by a
    ray cast written here: mask, depth and coords."""
    K = intrinsics(fov, w, h)
    u, v = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    d_cam = np.stack([(u - K[0, 2]) / K[0, 0], -(v - K[1, 2]) / K[1, 1], -np.ones_like(u)], -1)
    c2w = np.asarray(camera_matrix)
    d_world = d_cam @ c2w[:3, :3].T
    o = c2w[:3, 3]
    inv = np.linalg.inv(pose)
    o_l = inv[:3, :3] @ o + inv[:3, 3]
    d_l = d_world @ inv[:3, :3].T
    t = -o_l[2] / d_l[..., 2]
    p = o_l + t[..., None] * d_l
    hit = (t > 0) & (np.abs(p[..., 0]) <= 0.5) & (np.abs(p[..., 1]) <= 0.5)
    mask = np.where(hit, 1, 0).astype(np.uint32)
    depth = np.where(hit, t, 0.0).astype(np.float32)  # |d_cam.z| = 1: t is z-depth
    coords = np.where(hit[..., None], p, 0.0).astype(np.float32)
    return {"mask": mask, "depth": depth, "coords": coords, "instances": {"sq": 1},
            "objects": {"sq": {"id": 1, "pose": np.asarray(pose).tolist()}},
            "camera": {"matrix": np.asarray(camera_matrix).tolist(), "K": K.tolist()}}


def test_flow_follows_a_moved_object_and_a_moved_camera():
    pose_a = np.eye(4)
    pose_b = np.eye(4)
    pose_b[:3, 3] = [0.1, -0.05, 0.0]  # the square moves right and down
    cam = rc.look_at([0, 0, 3], [0, 0, 0])
    a, b = _frame(cam, pose_a), _frame(cam, pose_b)
    fl, valid = rc.flow(a, b)
    K = np.asarray(a["camera"]["K"])
    # 0.1 m at 3 m: f * 0.1 / 3 px right, f * 0.05 / 3 px down; the same for every pixel.
    expect = np.array([K[0, 0] * 0.1 / 3, K[1, 1] * 0.05 / 3])
    hit = a["mask"] > 0
    assert np.allclose(fl[hit], expect, atol=1e-4)
    assert valid[hit].mean() > 0.8 and not valid[~hit].any()
    # A moved camera: the flow of a pixel is where its back-projected point lands in b.
    cam_b = rc.look_at([0.3, 0.2, 2.8], [0, 0, 0])
    b = _frame(cam_b, pose_a)
    fl, valid = rc.flow(a, b)
    v, u = np.nonzero(hit)
    pts = np.c_[a["coords"][v, u], np.ones(len(u))] @ pose_a.T
    want = rc.project(pts[:, :3], cam_b, np.asarray(b["camera"]["K"])) - np.c_[u + 0.5, v + 0.5]
    assert np.allclose(fl[v, u], want, atol=1e-3)
    with pytest.raises(ValueError, match="coords"):
        rc.flow({"mask": a["mask"]}, b)


def _pack(masks: list[np.ndarray], w: int) -> bytes:
    """Silhouettes as the page packs them: 4 ids a plane, 8 pixels a byte, rows bottom-up."""
    h, w8 = masks[0].shape[0], -(-w // 8)
    planes = np.zeros((-(-len(masks) // 4), h, w8, 4), np.uint8)
    for j, m in enumerate(masks):
        padded = np.pad(m[::-1], ((0, 0), (0, w8 * 8 - w)))
        planes[j // 4, :, :, j % 4] = np.packbits(padded, axis=1, bitorder="little")
    return planes.tobytes()


def test_silhouettes_on_crops_equal_the_whole_frame_computation():
    """The worker unpacks and combines only each id's box; the same sums on whole frames
    (the plain computation) must give the same silhouettes, counts, boxes and file."""
    rng = np.random.default_rng(7)
    h, w = 37, 53  # a width no multiple of 8: the last byte of a row is padding
    for _ in range(20):
        n = int(rng.integers(1, 9))
        ids = [int(i) for i in rng.choice(np.arange(1, 300), n, replace=False)]
        whole, mask = {}, np.zeros((h, w), np.uint32)
        for i in ids:
            m = np.zeros((h, w), bool)
            if rng.random() < 0.9:  # some ids draw no silhouette at all
                x0, y0 = rng.integers(-10, w), rng.integers(-10, h)
                m[max(0, y0):y0 + rng.integers(1, 30), max(0, x0):x0 + rng.integers(1, 30)] = True
                m &= rng.random((h, w)) < 0.8
            whole[i] = m
            mask[m & (rng.random((h, w)) < 0.5)] = i
        mask[rng.random((h, w)) < 0.01] = ids[0]  # stray visible pixels outside the silhouette
        outer = {ids[-1]: np.zeros((3 * h, 3 * w), bool)}
        outer[ids[-1]][h - 3:h + 5, w - 4:2 * w + 2] = True
        block = {"w": w, "h": h, "ids": ids}
        inner = capture.unpack_bits(block, _pack([whole[i] for i in ids], w))
        assert all(np.array_equal(inner[i].full(h, w), whole[i]) for i in ids)
        # The page packs only the part of the canvas the meshes can reach: the same crops.
        planes = np.frombuffer(_pack([whole[i] for i in ids], w), np.uint8).reshape(-1, h, -(-w // 8), 4)
        y, rows = int(rng.integers(0, 8)), h - 8 - int(rng.integers(0, 8))
        x8, cols = int(rng.integers(0, 2)), -(-w // 8) - 2
        part = np.ascontiguousarray(planes[:, y:y + rows, x8:x8 + cols])
        for i in ids:  # outside the part nothing is drawn
            g = whole[i][::-1].copy()
            g[:y], g[y + rows:], g[:, :8 * x8], g[:, 8 * (x8 + cols):] = False, False, False, False
            whole[i] = g[::-1]
        block = {"w": w, "h": h, "ids": ids, "x8": x8, "y": y, "cols": cols, "rows": rows}
        inner = capture.unpack_bits(block, part.tobytes())
        assert all(np.array_equal(inner[i].full(h, w), whole[i]) for i in ids)
        crops, stats = labels.silhouettes(inner, {k: Crop.of(v) for k, v in outer.items()}, mask)
        for i in set(ids) | {int(v) for v in np.unique(mask) if v}:
            full = whole.get(i, np.zeros((h, w), bool)) | (mask == i)
            assert np.array_equal(crops[i].full(h, w), full), i
            if i in outer:
                big = outer[i].copy()
                big[h:2 * h, w:2 * w] |= full
                b = labels.box(big)
                assert stats[i] == (int(big.sum()), [b[0] - w, b[1] - h, b[2], b[3]])
            else:
                assert stats[i] == (int(full.sum()), labels.box(full))
        as_crops = files.decode("amodal", files.encode("amodal", (crops, (h, w)), None))
        assert as_crops.keys() == crops.keys()
        assert all(np.array_equal(as_crops[i], crops[i].full(h, w)) for i in crops)
