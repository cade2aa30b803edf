"""pybullet as an independent reference renderer for URDF scenes (`pip install pybullet`).

raycollect's labels are checked against a renderer it did not write: pybullet's own camera
(TinyRenderer) draws the same URDFs with the same joint values from the same camera, and its
segmentation buffer, depth buffer and forward kinematics (`getLinkState`) are compared with
raycollect's mask, depth and `links` (tests/test_robots.py, scripts/sweep_urdfs.py).

Two things make the comparison fair:
- TinyRenderer samples pixels half a pixel off WebGL's pixel centres (-0.5 px in x, +0.5 px
  in y); the projection matrix here is shifted to match (without it, masks of the KUKA iiwa
  agreed at IoU 0.86-0.96 and depth within 2-4 mm; with it, 0.996-1.000 and < 0.1 mm).
- pybullet keeps a robot's earlier joint values; every movable joint is reset here, 0 where
  the job names none, as raycollect does (raycollect/urdf.py).

Worlds are Z-up (pybullet's), so use raycollect with `up="z"`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..urdf import MOVABLE


@dataclass
class Robot:
    key: str
    urdf: str  # a path pybullet can load
    position: tuple = (0.0, 0.0, 0.0)
    joints: dict | None = None  # joint name -> value


@dataclass
class Frame:
    seg: np.ndarray  # H x W: index of the robot in the list, -1 where none
    depth: np.ndarray  # H x W float32 z-depth in metres, 0 where none
    links: dict  # robot key -> {link name: 4x4 link frame to world}


def render(robots: list[Robot], c2w: np.ndarray, fov: float, width: int, height: int,
           near: float, far: float) -> Frame:
    """pybullet's view of `robots` (fixed bases) from the camera `c2w` (4x4 camera-to-world,
    OpenGL axes, as raycollect's), with pybullet's forward kinematics of every link."""
    import pybullet as pb

    client = pb.connect(pb.DIRECT)
    try:
        uids, links = [], {}
        for r in robots:
            uid = pb.loadURDF(r.urdf, basePosition=list(r.position), useFixedBase=True,
                              physicsClientId=client)
            uids.append(uid)
            names = {}
            for j in range(pb.getNumJoints(uid, physicsClientId=client)):
                info = pb.getJointInfo(uid, j, physicsClientId=client)
                name, kind, link = info[1].decode(), info[2], info[12].decode()
                names[j] = link
                if kind in (pb.JOINT_REVOLUTE, pb.JOINT_PRISMATIC):
                    pb.resetJointState(uid, j, float((r.joints or {}).get(name, 0.0)),
                                       physicsClientId=client)
            links[r.key] = {}
            for j, link in names.items():
                st = pb.getLinkState(uid, j, computeForwardKinematics=True,
                                     physicsClientId=client)
                m = np.eye(4)
                m[:3, :3] = np.asarray(pb.getMatrixFromQuaternion(st[5])).reshape(3, 3)
                m[:3, 3] = st[4]
                links[r.key][link] = m
        view = np.linalg.inv(np.asarray(c2w, dtype=np.float64)).T.flatten().tolist()
        proj = list(pb.computeProjectionMatrixFOV(fov, width / height, near, far))
        proj[8] += 1.0 / width  # TinyRenderer's half-pixel offset (see above)
        proj[9] += 1.0 / height
        _, _, _, d, seg = pb.getCameraImage(
            width, height, view, proj, renderer=pb.ER_TINY_RENDERER,
            flags=pb.ER_SEGMENTATION_MASK_OBJECT_AND_LINKINDEX, physicsClientId=client)
        seg = np.asarray(seg, dtype=np.int64).reshape(height, width)
        d = np.asarray(d, dtype=np.float64).reshape(height, width)
        body = np.where(seg >= 0, seg & ((1 << 24) - 1), -1)
        index = np.full(body.shape, -1)
        for i, uid in enumerate(uids):
            index[body == uid] = i
        z = far * near / (far - (far - near) * d)
        depth = np.where(index >= 0, z, 0.0).astype(np.float32)
        return Frame(index, depth, links)
    finally:
        pb.disconnect(client)


def movable_joints(urdf: str) -> list[str]:
    """Names of the joints pybullet would reset (revolute, continuous and prismatic)."""
    import xml.etree.ElementTree as ET

    return [j.get("name") for j in ET.parse(urdf).getroot().findall("joint")
            if j.get("type") in MOVABLE]


def compare(mask: np.ndarray, depth: np.ndarray, ref: Frame, ids: list[int]) -> list[dict]:
    """Per robot (in the order of `ids`, raycollect's instance ids): mask IoU against pybullet's
    segmentation, and the median and 99th percentile of |z-depth difference| (metres) on the
    pixels both call that robot."""
    out = []
    for i, rid in enumerate(ids):
        ours, theirs = mask == rid, ref.seg == i
        union = int((ours | theirs).sum())
        both = ours & theirs
        err = np.abs(depth[both].astype(np.float64) - ref.depth[both])
        out.append({"iou": float(both.sum() / union) if union else 1.0,
                    "px": int(ours.sum()), "ref_px": int(theirs.sum()),
                    "depth_median": float(np.median(err)) if err.size else float("nan"),
                    "depth_p99": float(np.percentile(err, 99)) if err.size else float("nan")})
    return out


def _rpy(r: float, p: float, y: float) -> np.ndarray:
    cx, sx, cy, sy, cz, sz = np.cos(r), np.sin(r), np.cos(p), np.sin(p), np.cos(y), np.sin(y)
    return (np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
            @ np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
            @ np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]]))


def _obj(path) -> tuple[np.ndarray, list]:
    verts, faces = [], []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            t = line.split()
            if not t:
                continue
            if t[0] == "v":
                verts.append([float(x) for x in t[1:4]])
            elif t[0] == "f":
                idx = [int(x.split("/")[0]) for x in t[1:]]
                idx = [i - 1 if i > 0 else len(verts) + i for i in idx]
                faces += [[idx[0], idx[k], idx[k + 1]] for k in range(1, len(idx) - 1)]
    return np.asarray(verts), faces


def _stl(path) -> tuple[np.ndarray, list]:
    data = open(path, "rb").read()
    n = int.from_bytes(data[80:84], "little") if len(data) >= 84 else 0
    if len(data) == 84 + 50 * n:  # binary: 80-byte header, count, 50 bytes per triangle
        tri = np.frombuffer(data, dtype=np.dtype([("n", "<f4", 3), ("v", "<f4", (3, 3)),
                                                 ("a", "<u2")]), count=n, offset=84)
        verts = tri["v"].reshape(-1, 3).astype(np.float64)
    else:
        verts = np.array([[float(x) for x in line.split()[1:4]]
                          for line in data.decode(errors="replace").splitlines()
                          if line.strip().startswith("vertex")])
    return verts, [[3 * i, 3 * i + 1, 3 * i + 2] for i in range(len(verts) // 3)]


def project_visuals(urdf: str, links: dict, c2w: np.ndarray, K: np.ndarray, width: int,
                    height: int) -> np.ndarray:
    """A third, independent computation of where a robot is in a frame: the URDF's own OBJ
    and STL visual meshes (scaled as the URDF says), placed by the given link frames and visual origins, projected with the
    pinhole camera and filled triangle by triangle (PIL). Pixels touched by a triangle's edge
    count too, so it covers a little more than either renderer."""
    import xml.etree.ElementTree as ET
    from pathlib import Path

    from PIL import Image, ImageDraw

    from ..camera import project
    from ..urdf import resolve

    path = Path(urdf)
    img = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(img)
    for link in ET.parse(path).getroot().findall("link"):
        for vis in link.findall("visual"):
            mesh = vis.find("geometry/mesh")
            if mesh is None:
                continue
            f = resolve(mesh.get("filename"), path, path.parent)
            if f is None or f.suffix.lower() not in (".obj", ".stl"):
                continue
            verts, faces = (_obj if f.suffix.lower() == ".obj" else _stl)(f)
            verts = verts * np.asarray([float(x) for x in mesh.get("scale", "1 1 1").split()])
            origin = np.eye(4)
            o = vis.find("origin")
            if o is not None:
                origin[:3, :3] = _rpy(*map(float, o.get("rpy", "0 0 0").split()))
                origin[:3, 3] = list(map(float, o.get("xyz", "0 0 0").split()))
            world = np.asarray(links[link.get("name")]) @ origin
            uv = project((world[:3, :3] @ verts.T).T + world[:3, 3], c2w, K)
            for tri in faces:
                draw.polygon([tuple(uv[i]) for i in tri], fill=255)
    return np.asarray(img) > 0
