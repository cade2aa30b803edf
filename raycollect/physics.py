"""Objects dropped on a support and settled with pybullet: resting poses for a scene.

    poses = rc.physics.drop([rc.physics.Body("duck", "meshes/duck.obj", scale=0.05), ...],
                            on=rc.physics.Support(size=(0.6, 0.4)), seed=params["scene"])
    poses["duck"].position, poses["duck"].quaternion, poses["duck"].matrix

How: a fresh pybullet world (DIRECT, no window) per call, Z-up with gravity -Z, as pybullet
and `rc.render(..., up="z")` have it. The support is a static slab whose top is at `on.z`.
Each body gets a collision shape from its own mesh: pybullet's convex hull of the mesh
(`createCollisionShape(GEOM_MESH)`), or with `concave=True` the union of convex parts of
pybullet's V-HACD decomposition (`p.vhacd`, computed once per mesh file and kept under the
system temp dir); a mesh that is already a decomposition (several objects in one OBJ, like
pybullet_data's duck_vhacd.obj) is a compound of its parts as it is. URDF bodies load as
they are. Bodies are placed one by one at a random orientation and a random place above the
support, never within `CLEARANCE` of a body placed before; then the world steps until every
body is still, and the poses are read.

Determinism: every draw comes from the seed (raycollect/seeding.py), and pybullet's DIRECT
world gives the same result for the same calls in the same order (with deterministic
overlapping pairs on), so the same (bodies, support, seed) give the same poses bit for bit,
in any process. A drop in which a body ends off the support is dropped again from the next
attempt's draws (a pure function of the seed and the attempt number), up to `attempts`.

It runs once per scene, not once per view: on the driver (put the poses in the jobs' params,
as examples/bop_generator.py does) or in a scene function (the results are memoised per
process by the call's arguments, so a worker rendering 25 views of a scene drops it once).
pybullet comes with `pip install 'raycollect[reference]'`.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .errors import RaycollectError
from .seeding import rng

GRAVITY = -9.81  # m/s^2 along -Z
TIME_STEP = 1 / 240  # pybullet's default step; contacts are tuned for it
MAX_SETTLE_SECONDS = 8.0
MIN_SETTLE_SECONDS = 0.25
# Still: every body slower than this for STILL_STEPS steps in a row.
STILL_LINEAR = 2e-3  # m/s
STILL_ANGULAR = 2e-2  # rad/s
STILL_STEPS = 48
CLEARANCE = 0.005  # m between a newly placed body and every other at its drop pose
PLACE_TRIES = 60  # random places tried at one height before placing higher
PLACE_HEIGHTS = 8  # heights tried, each a body's height above the last, before giving up
DROP_GAP = (0.01, 0.06)  # m from the support's top to a body's lowest point, at the first height
EDGE_MARGIN = 0.02  # m kept between a body's drop footprint and the support's edge
ATTEMPTS = 5
FRICTION, ROLLING_FRICTION, SPINNING_FRICTION = 0.8, 1e-3, 1e-3
VHACD_RESOLUTION = 100_000  # voxels: V-HACD's own default (pybullet's 1e6 takes 10x longer)
VHACD_DIR = Path(tempfile.gettempdir()) / "raycollect-vhacd"
MESH_SUFFIXES = (".obj", ".stl")  # what pybullet's GEOM_MESH reads
CACHE_SIZE = 64


class PhysicsError(RaycollectError, RuntimeError):
    """The bodies could not be dropped: a mesh pybullet cannot read, no place left on the
    support, or a drop in which bodies kept falling off it."""


def _pybullet():
    try:
        import pybullet
    except ImportError:
        raise PhysicsError("rc.physics needs pybullet: pip install 'raycollect[reference]'") \
            from None
    return pybullet


@dataclass(frozen=True)
class Body:
    """An object to drop: its element key, its mesh file (OBJ or STL; or a URDF), a uniform
    scale, its mass in kg, an optional separate collision mesh, and `concave=True` to use a
    V-HACD decomposition instead of the convex hull."""

    key: str
    mesh: str
    scale: float = 1.0
    mass: float = 0.1
    collision: str | None = None
    concave: bool = False


@dataclass(frozen=True)
class Support:
    """A horizontal slab, centred on (x, y), `size` metres wide (X) and deep (Y), its top at z."""

    size: tuple[float, float] = (0.6, 0.6)
    z: float = 0.0
    x: float = 0.0
    y: float = 0.0
    thickness: float = 0.05


@dataclass(frozen=True)
class Pose:
    """A resting pose in the Z-up world: position (m), quaternion [x, y, z, w] (pybullet's
    and three.js's order), and the same as a 4x4 body-to-world matrix (list of rows)."""

    position: tuple[float, float, float]
    quaternion: tuple[float, float, float, float]
    matrix: list = field(compare=False)


def matrix(position: Sequence[float], quaternion: Sequence[float]) -> np.ndarray:
    """4x4 from a position and an [x, y, z, w] quaternion."""
    x, y, z, w = (float(v) for v in quaternion)
    n = math.sqrt(x * x + y * y + z * z + w * w)
    x, y, z, w = x / n, y / n, z / n, w / n
    m = np.eye(4)
    m[:3, :3] = [[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                 [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                 [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]]
    m[:3, 3] = position
    return m


def _check_body(i: int, b: Any) -> Body:
    if isinstance(b, dict):
        try:
            b = Body(**b)
        except TypeError as e:
            raise PhysicsError(f"drop: objects[{i}]: {e}") from None
    if not isinstance(b, Body):
        raise PhysicsError(f"drop: objects[{i}] must be a Body or a dict of its fields, got "
                           f"{type(b).__name__}")
    for name in (b.mesh, b.collision):
        if name is None:
            continue
        path = Path(name)
        if not path.is_file():
            raise PhysicsError(f"drop: objects[{i}] ({b.key}): no file {name}")
        if path.suffix.lower() not in MESH_SUFFIXES + (".urdf",):
            raise PhysicsError(f"drop: objects[{i}] ({b.key}): {path.suffix} is not a mesh "
                               f"pybullet reads ({', '.join(MESH_SUFFIXES)} or .urdf)")
    if not (b.scale > 0 and b.mass > 0):
        raise PhysicsError(f"drop: objects[{i}] ({b.key}): scale and mass must be > 0")
    return b


def _digest(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.blake2b(f.read(), digest_size=12).hexdigest()


@contextlib.contextmanager
def _quiet():
    """Send file descriptor 1 to /dev/null meanwhile (C code's prints included)."""
    import sys

    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def decompose(mesh: str) -> str:
    """The path of an OBJ holding pybullet's V-HACD decomposition of `mesh` (convex parts),
    made once per mesh content and kept under VHACD_DIR."""
    p = _pybullet()
    VHACD_DIR.mkdir(parents=True, exist_ok=True)
    out = VHACD_DIR / f"{_digest(mesh)}.obj"
    if not out.is_file():
        tmp = out.with_suffix(f".{os.getpid()}.obj")
        log = out.with_suffix(f".{os.getpid()}.log")
        with _quiet():  # V-HACD prints its progress on the process's own stdout
            p.vhacd(str(mesh), str(tmp), str(log), resolution=VHACD_RESOLUTION)
        if not tmp.is_file() or tmp.stat().st_size == 0:
            raise PhysicsError(f"V-HACD made nothing of {mesh} (see {log})")
        os.replace(tmp, out)  # atomic: another process may decompose the same mesh
        log.unlink(missing_ok=True)
    return str(out)


class _World:
    """One pybullet DIRECT world: the support and the bodies as they are placed."""

    def __init__(self, support: Support):
        self.p = p = _pybullet()
        self.cid = p.connect(p.DIRECT)
        p.resetSimulation(physicsClientId=self.cid)
        p.setPhysicsEngineParameter(deterministicOverlappingPairs=1, fixedTimeStep=TIME_STEP,
                                    physicsClientId=self.cid)
        p.setGravity(0, 0, GRAVITY, physicsClientId=self.cid)
        sx, sy = support.size
        half = [sx / 2, sy / 2, support.thickness / 2]
        shape = p.createCollisionShape(p.GEOM_BOX, halfExtents=half, physicsClientId=self.cid)
        self.support = p.createMultiBody(0, shape, basePosition=[
            support.x, support.y, support.z - support.thickness / 2], physicsClientId=self.cid)
        self._friction(self.support)
        self.shapes: dict = {}

    def close(self) -> None:
        self.p.disconnect(self.cid)

    def _friction(self, uid: int) -> None:
        self.p.changeDynamics(uid, -1, lateralFriction=FRICTION, rollingFriction=ROLLING_FRICTION,
                              spinningFriction=SPINNING_FRICTION, physicsClientId=self.cid)

    def add(self, b: Body, position, quaternion) -> int:
        p = self.p
        if b.mesh.lower().endswith(".urdf"):
            uid = p.loadURDF(b.mesh, position, quaternion, globalScaling=b.scale,
                             physicsClientId=self.cid)
        else:
            source = b.collision or b.mesh
            if b.concave:
                source = decompose(source)
            key = (source, b.scale)
            if key not in self.shapes:
                self.shapes[key] = p.createCollisionShape(
                    p.GEOM_MESH, fileName=source, meshScale=[b.scale] * 3,
                    physicsClientId=self.cid)
            if self.shapes[key] < 0:
                raise PhysicsError(f"drop: {b.key}: pybullet could not read {source}")
            uid = p.createMultiBody(b.mass, self.shapes[key], basePosition=position,
                                    baseOrientation=quaternion, physicsClientId=self.cid)
        self._friction(uid)
        return uid

    def aabb(self, uid: int) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = self.p.getAABB(uid, physicsClientId=self.cid)
        return np.array(lo), np.array(hi)

    def near(self, uid: int, others: list[int], distance: float) -> bool:
        return any(self.p.getClosestPoints(uid, o, distance, physicsClientId=self.cid)
                   for o in others)

    def move(self, uid: int, position, quaternion) -> None:
        self.p.resetBasePositionAndOrientation(uid, position, quaternion,
                                               physicsClientId=self.cid)

    def settle(self, uids: list[int]) -> None:
        p, still = self.p, 0
        for step in range(int(MAX_SETTLE_SECONDS / TIME_STEP)):
            p.stepSimulation(physicsClientId=self.cid)
            fast = False
            for u in uids:
                lin, ang = p.getBaseVelocity(u, physicsClientId=self.cid)
                if np.linalg.norm(lin) > STILL_LINEAR or np.linalg.norm(ang) > STILL_ANGULAR:
                    fast = True
                    break
            still = 0 if fast else still + 1
            if still >= STILL_STEPS and step * TIME_STEP >= MIN_SETTLE_SECONDS:
                return

    def pose(self, uid: int) -> Pose:
        """The body's link frame (pybullet reports the inertial frame: undo its offset, which
        a URDF may set)."""
        p = self.p
        pos, orn = p.getBasePositionAndOrientation(uid, physicsClientId=self.cid)
        info = p.getDynamicsInfo(uid, -1, physicsClientId=self.cid)
        inv_pos, inv_orn = p.invertTransform(info[3], info[4])
        pos, orn = p.multiplyTransforms(pos, orn, inv_pos, inv_orn)
        pos, orn = tuple(float(v) for v in pos), tuple(float(v) for v in orn)
        return Pose(pos, orn, matrix(pos, orn).tolist())


def _quaternion(g: np.random.Generator) -> list[float]:
    """A rotation uniform over SO(3) (Shoemake's method), [x, y, z, w]."""
    u1, u2, u3 = g.random(3)
    a, b = math.sqrt(1 - u1), math.sqrt(u1)
    return [a * math.sin(2 * math.pi * u2), a * math.cos(2 * math.pi * u2),
            b * math.sin(2 * math.pi * u3), b * math.cos(2 * math.pi * u3)]


def _attempt(bodies: list[Body], on: Support, area: tuple[float, float],
             g: np.random.Generator) -> tuple[dict, list[str]]:
    world = _World(on)
    try:
        uids: list[int] = []
        for b in bodies:
            q = _quaternion(g)
            uid = world.add(b, [on.x, on.y, on.z + 10.0], q)  # out of the way, to measure
            lo, hi = world.aabb(uid)
            half = (hi - lo) / 2
            centre_off = (hi + lo) / 2 - np.array([on.x, on.y, on.z + 10.0])
            rx = min(area[0], on.size[0]) / 2 - half[0] - EDGE_MARGIN
            ry = min(area[1], on.size[1]) / 2 - half[1] - EDGE_MARGIN
            if rx <= 0 or ry <= 0:
                raise PhysicsError(f"drop: {b.key} ({2 * half[0]:.3f} x {2 * half[1]:.3f} m) "
                                   f"does not fit in the drop area ({area[0]} x {area[1]} m) of "
                                   f"the support ({on.size[0]} x {on.size[1]} m)")
            lowest = on.z + g.uniform(*DROP_GAP)
            placed = False
            for _ in range(PLACE_HEIGHTS):
                for _ in range(PLACE_TRIES):
                    centre = np.array([on.x + g.uniform(-rx, rx), on.y + g.uniform(-ry, ry),
                                       lowest + half[2]])
                    world.move(uid, (centre - centre_off).tolist(), q)
                    if not world.near(uid, [world.support, *uids], CLEARANCE):
                        placed = True
                        break
                if placed:
                    break
                lowest += 2 * half[2]  # crowded at this height: try above
            if not placed:
                raise PhysicsError(f"drop: no free place for {b.key} above the support")
            uids.append(uid)
        world.settle(uids)
        poses, fell = {}, []
        for b, uid in zip(bodies, uids):
            pose = world.pose(uid)
            poses[b.key] = pose
            # pybullet's box of a turned body is loose, but its centre is the body's: a
            # mesh's origin need not be inside it.
            x, y, z = np.add(*world.aabb(uid)) / 2
            if abs(x - on.x) > on.size[0] / 2 or abs(y - on.y) > on.size[1] / 2 or z < on.z:
                fell.append(b.key)
        return poses, fell
    finally:
        world.close()


@functools.lru_cache(maxsize=CACHE_SIZE)
def _drop(bodies: tuple[Body, ...], on: Support, area: tuple[float, float], seed_json: str,
          attempts: int) -> dict:
    seed = json.loads(seed_json)
    fell: list[str] = []
    for k in range(attempts):
        poses, fell = _attempt(list(bodies), on, area, rng({"physics": seed}, ["drop", k]))
        if not fell:
            return poses
    raise PhysicsError(f"drop: {', '.join(fell)} fell off the support in each of {attempts} "
                       f"attempts (seed {seed!r}); a larger support or fewer bodies")


def drop(objects: Sequence[Body | dict], on: Support | None = None, seed: Any = 0,
         area: Sequence[float] | None = None, attempts: int = ATTEMPTS) -> dict[str, Pose]:
    """Drop `objects` onto `on` and let them settle; {key: Pose} of their resting poses in the
    Z-up world (module doc). seed: an int or any JSON value (a job's scene params, for one).
    area: (x, y) metres of the square centred on the support where bodies are dropped (the
    whole support by default; a smaller one keeps bodies that bounce from going over the edge).
    The same call returns the same poses, bit for bit; it is memoised per process."""
    bodies = tuple(_check_body(i, b) for i, b in enumerate(objects))
    keys = [b.key for b in bodies]
    if len(set(keys)) != len(keys):
        raise PhysicsError(f"drop: keys must be unique, got {keys}")
    on = on or Support()
    try:
        seed_json = json.dumps(seed, sort_keys=True)
    except TypeError:
        raise PhysicsError(f"drop: seed must be JSON (an int, a string, a dict), got "
                           f"{type(seed).__name__}") from None
    area = tuple(float(a) for a in (area or on.size))
    if len(area) != 2 or min(area) <= 0:
        raise PhysicsError(f"drop: area must be (x, y) > 0 metres, got {area!r}")
    return dict(_drop(bodies, on, area, seed_json, attempts))
