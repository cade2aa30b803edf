"""An MJCF model as a raycollect scene: `world = rc.mjcf("robot.xml")`, then
`rc.render(jobs, scene=world, ...)`.

A job's params give the simulation state: "qpos" (and, as a rollout recorded them,
"qvel", "act", "ctrl", "mocap_pos", "mocap_quat", "time"), or "keyframe" (a name or index of
the model's keyframes) that the other fields then change. MuJoCo's own kinematics
(`mj_forward`) place the bodies. Every camera and pose is in MuJoCo's Z-up world: a world
makes `rc.render` default to `up="z"`, and serves the files it writes (its meshes) as the
assets folder, so nothing else is named.

The scene is one top-level element per MuJoCo body that draws something, keyed by the body's
name (`body<i>` for an unnamed one): a group placed at the body frame (`xpos`, `xquat`)
holding the body's visible geoms at their body-relative poses (raycollect/mjcf/geoms.py). So
instance ids, masks and `objects[...]["pose"]` are per body, and a body's pose in the labels
is its MuJoCo frame. Every body but the world body is marked as moving
(raycollect/scene.py `moving`): jobs that differ only in the state share one scene update, as
URDF joint values do, and the page sets each view's body poses before it renders.

The world is pickled to the render workers as its path (and `assets`); each worker process
compiles the model once. On a cluster the MJCF and the files it includes must be at the same
path on every node.
"""

from __future__ import annotations

import math
import threading
from pathlib import Path

import numpy as np
from vuer.schemas import AmbientLight, DirectionalLight, group

from .. import scene as scenes
from ..assets import asset
from ..errors import InvalidJob
from . import files, geoms, skins, tendons

# What a job's params may say about the state, and each field's shape: model attribute
# sizes (nq, nv, ...) and the number of values per row.
STATE_FIELDS = {"qpos": ("nq", 1), "qvel": ("nv", 1), "act": ("na", 1), "ctrl": ("nu", 1),
                "mocap_pos": ("nmocap", 3), "mocap_quat": ("nmocap", 4)}
KEYFRAME = "keyframe"
TIME = "time"
# Lights: MuJoCo's default headlight is ambient 0.1 and diffuse 0.4 from the camera; a
# three.js scene has no light that follows every view, so a sky light and a sun stand in.
# Colours are the render's look only; depth, masks and labels do not depend on them.
AMBIENT_INTENSITY = 0.8
SUN_INTENSITY = 2.0
SUN_DIRECTION = (1.0, -1.5, 3.0)
LIGHT_KEYS = ("mj-ambient", "mj-sun")
SKYBOX_KEY = "mj-skybox"


class World:
    """An MJCF model as a scene function (params -> vuer elements), with its cameras."""

    up = "z"

    def __init__(self, path: str | Path, assets: dict | None = None):
        self.path = str(Path(path).expanduser().resolve())
        self.assets = dict(assets) if assets else None
        self._local = None
        model = self.model  # fails now, naming the file, if MuJoCo cannot load it
        self.folder = str(files.write_folder(model, extra=(skins.write, tendons.write)))

    # --- the model, compiled once per process ------------------------------------------
    def __getstate__(self) -> dict:
        return {"path": self.path, "assets": self.assets, "folder": self.folder}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._local = None

    @property
    def model(self):
        if self._local is None:
            self._local = _Compiled(load(self.path, self.assets))
        return self._local.model

    @property
    def name(self) -> str:
        return Path(self.path).name

    def render_defaults(self) -> dict:
        """Options `rc.render` takes from the scene when the caller gives none."""
        return {"up": self.up, "assets": self.folder}

    # --- state ---------------------------------------------------------------------------
    def forward(self, params: dict):
        """A fresh MjData holding the params' state after mj_forward. InvalidJob (with the job
        left for raycollect/scene.py to fill in) names a field the model cannot take."""
        import mujoco

        model = self.model
        data = mujoco.MjData(model)
        key = params.get(KEYFRAME)
        if key is not None:
            mujoco.mj_resetDataKeyframe(model, data, self._keyframe(key))
        self._fill(data, params)
        mujoco.mj_forward(model, data)
        return data

    def _fill(self, data, params: dict) -> None:
        model = self.model
        for field, (size, width) in STATE_FIELDS.items():
            if field in params:
                getattr(data, field)[:] = self._values(params[field], field,
                                                       int(getattr(model, size)), width)
        if TIME in params:
            t = params[TIME]
            if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t):
                raise InvalidJob(scenes.UNNAMED_JOB, TIME, f"must be a number, got {t!r}")
            data.time = float(t)

    def _keyframe(self, key) -> int:
        model = self.model
        names = [model.key(i).name for i in range(model.nkey)]
        if isinstance(key, int) and not isinstance(key, bool) and 0 <= key < model.nkey:
            return key
        if isinstance(key, str) and key in names:
            return names.index(key)
        raise InvalidJob(scenes.UNNAMED_JOB, KEYFRAME,
                         f"no keyframe {key!r} in {self.name}; its keyframes: "
                         f"{', '.join(n or f'#{i}' for i, n in enumerate(names)) or 'none'}")

    def _values(self, value, field: str, rows: int, width: int) -> np.ndarray:
        try:
            arr = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            raise InvalidJob(scenes.UNNAMED_JOB, field, "must be a list of numbers") from None
        expected = rows * width
        if arr.size != expected or (width > 1 and arr.ndim == 2 and arr.shape != (rows, width)):
            shape = f"{rows}" if width == 1 else f"{rows} x {width}"
            raise InvalidJob(scenes.UNNAMED_JOB, field,
                             f"has {arr.size} values; {self.name} takes {shape} "
                             f"({expected} values)")
        if not np.all(np.isfinite(arr)):
            raise InvalidJob(scenes.UNNAMED_JOB, field, "has non-finite values")
        return arr.reshape((rows, width) if width > 1 else (rows,))

    # --- the scene -----------------------------------------------------------------------
    def _state(self, params: dict) -> tuple[np.ndarray, np.ndarray, dict]:
        """(xpos, xquat, tendon pieces) in the params' state: the body frames of mj_forward
        from its first stage alone (mj_kinematics) and, for a world with visible tendons,
        their paths (mj_comPos, mj_tendon; raycollect/mjcf/tendons.py), in one MjData per
        process: a worker computes this for every job of a rollout."""
        import mujoco

        model = self.model  # compiles it in this process, once
        compiled = self._local
        with compiled.lock:
            data = compiled.scratch()
            key = params.get(KEYFRAME)
            if key is not None:
                mujoco.mj_resetDataKeyframe(model, data, self._keyframe(key))
            else:
                mujoco.mj_resetData(model, data)
            self._fill(data, params)
            mujoco.mj_kinematics(model, data)
            paths = {}
            if compiled.tendons():
                mujoco.mj_comPos(model, data)
                mujoco.mj_tendon(model, data)
                paths = compiled.paths().pieces(data)
            return data.xpos.copy(), data.xquat.copy(), paths

    def __call__(self, params: dict) -> list:
        xpos, xquat, paths = self._state(params)
        sun = -np.asarray(SUN_DIRECTION) / np.linalg.norm(SUN_DIRECTION)
        out = [AmbientLight(key=LIGHT_KEYS[0], intensity=AMBIENT_INTENSITY),
               DirectionalLight(key=LIGHT_KEYS[1], position=list(-sun * 10),
                                intensity=SUN_INTENSITY)]
        if self._local.sky:
            out.append(scenes.skybox(self._local.sky, key=SKYBOX_KEY))
        for body, key, children in self._local.bodies():
            el = group(*children, key=key, position=[float(v) for v in xpos[body]],
                       quaternion=[float(v) for v in geoms.xyzw(xquat[body])])
            out.append(scenes.moving(el) if body != 0 else el)
        model = self.model
        for skin, key in self._local.skins():
            out.append(skins.element(model, skin, key, xpos, xquat))
        for tendon, key in self._local.tendons():
            out.append(skins.skinned_element(
                key, f"t{tendon}", tendons.ply_file(tendon), tendons.bones_file(tendon),
                tendons.colour(model, tendon), tendons.bones(model, tendon, paths.get(tendon, []))))
        return out

    def static_params(self, params: dict) -> dict:
        """The params this scene's elements depend on, but their per-view placements (what
        raycollect/scene.py `digest_key` asks): none. The state only places the bodies, which
        are all moving; the world body stays at the origin."""
        return {}

    def body_key(self, body: int) -> str:
        return body_key(self.model, body)

    def skin_keys(self) -> dict[int, str]:
        """{skin id: element key} of the skins the world draws (raycollect/mjcf/skins.py)."""
        return dict(self._compiled().skins())

    def tendon_keys(self) -> dict[int, str]:
        """{tendon id: element key} of the tendons the world draws (raycollect/mjcf/tendons.py)."""
        return dict(self._compiled().tendons())

    def _compiled(self) -> "_Compiled":
        self.model  # noqa: B018 - compiles it in this process, once
        return self._local

    # --- cameras -------------------------------------------------------------------------
    def camera(self, camera: str | int, width: int, height: int, state: dict | None = None,
               near: float | None = None, far: float | None = None) -> dict:
        """A raycollect camera (params["camera"]) for the MJCF camera `camera` (name or id)
        in the state `state` (job params; the model's default state without): its pose as
        mj_forward puts it, so a camera on a moving body follows it, and its vertical fov.
        near/far default to MuJoCo's own clipping planes (`vis.map.znear/zfar` times the
        model's extent)."""
        model = self.model
        cam = self._camera_id(camera)
        try:
            data = self.forward(state or {})
        except InvalidJob as e:
            raise ValueError(f"state field {e.field!r}: {e.message}") from None
        m = np.eye(4)
        m[:3, :3] = np.asarray(data.cam_xmat[cam]).reshape(3, 3)
        m[:3, 3] = data.cam_xpos[cam]
        return {"matrix": m.tolist(), "fov": self.fovy(cam), "width": int(width),
                "height": int(height),
                "near": float(near if near is not None else model.vis.map.znear * model.stat.extent),
                "far": float(far if far is not None else model.vis.map.zfar * model.stat.extent)}

    def cameras(self) -> list[str]:
        model = self.model
        return [model.cam(i).name or f"#{i}" for i in range(model.ncam)]

    def _camera_id(self, camera) -> int:
        names = self.cameras()
        if isinstance(camera, int) and not isinstance(camera, bool) and 0 <= camera < len(names):
            return camera
        if isinstance(camera, str) and camera in names:
            return names.index(camera)
        raise ValueError(f"no camera {camera!r} in {self.name}; its cameras: "
                         f"{', '.join(names) if names else 'none'}")

    def fovy(self, cam: int) -> float:
        """The camera's vertical fov in degrees. A camera given by its sensor (sensorsize and
        focal length) has it from those; one whose principal point is off centre has no
        centred pinhole K, which raycollect's cameras are, and is refused."""
        model = self.model
        sensor = np.asarray(model.cam_sensorsize[cam], dtype=float)
        if not np.any(sensor > 0):
            return float(model.cam_fovy[cam])
        fx, fy, cx, cy = (float(v) for v in model.cam_intrinsic[cam])
        if abs(cx) > 1e-12 or abs(cy) > 1e-12:
            raise ValueError(f"camera {self.cameras()[cam]!r} of {self.name} has its principal "
                             f"point off centre ({cx}, {cy}): raycollect's cameras have a "
                             f"centred K")
        return math.degrees(2 * math.atan2(sensor[1] / 2, fy))


class _Compiled:
    """A compiled model and its static parts (each body's geom elements, the skybox), once
    per process."""

    def __init__(self, model):
        self.model = model
        self.sky = [asset(f) for f in files.skybox_files(model)]  # its faces' URLs, or []
        self._bodies = None
        self._lock = threading.Lock()
        self.lock = threading.Lock()  # held while the scratch MjData is in use
        self._scratch = None
        self._skins = None
        self._tendons = None
        self._paths = None

    def scratch(self):
        import mujoco

        if self._scratch is None:
            self._scratch = mujoco.MjData(self.model)
        return self._scratch

    def skins(self) -> list[tuple[int, str]]:
        """(skin id, key) of every skin MuJoCo's renderer shows."""
        if self._skins is None:
            m = self.model
            taken = {body_key(m, b) for b in range(m.nbody)}
            self._skins = [(s, skins.key(m, s, taken)) for s in range(m.nskin)
                           if skins.visible(m, s)]
        return self._skins

    def tendons(self) -> list[tuple[int, str]]:
        """(tendon id, key) of every tendon MuJoCo's renderer shows."""
        if self._tendons is None:
            m = self.model
            taken = {body_key(m, b) for b in range(m.nbody)} | {k for _, k in self.skins()}
            self._tendons = [(t, tendons.key(m, t, taken)) for t in range(m.ntendon)
                             if tendons.visible(m, t)]
        return self._tendons

    def paths(self) -> "tendons.Paths":
        if self._paths is None:
            self._paths = tendons.Paths(self.model)
        return self._paths

    def bodies(self) -> list[tuple[int, str, list]]:
        """(body id, key, geom elements) of every body that draws something."""
        with self._lock:
            if self._bodies is None:
                m = self.model
                far = float(m.vis.map.zfar * m.stat.extent)
                drawn: dict[int, list] = {}
                for g in range(m.ngeom):
                    if geoms.visible(m, g):
                        drawn.setdefault(int(m.geom_bodyid[g]), []).append(geoms.element(m, g, far))
                for s in range(m.nsite):
                    if geoms.site_visible(m, s):
                        drawn.setdefault(int(m.site_bodyid[s]), []).append(geoms.site_element(m, s))
                self._bodies = [(b, body_key(m, b), els) for b, els in sorted(drawn.items())]
            return self._bodies


def body_key(model, body: int) -> str:
    return model.body(body).name or f"body{body}"


def load(path: str, assets: dict | None = None):
    """The compiled MjModel, or ValueError naming the file and MuJoCo's message."""
    try:
        import mujoco
    except ImportError:
        raise ImportError("MJCF worlds need the mujoco package: pip install "
                          "'raycollect[mujoco]'") from None

    try:
        return mujoco.MjModel.from_xml_path(path, assets or {})
    except (ValueError, OSError) as e:
        raise ValueError(f"MuJoCo cannot load {path}: {str(e).strip()}") from None


def mjcf(path: str | Path, assets: dict | None = None) -> World:
    """Load an MJCF file (raycollect/mjcf/world.py): a scene for `rc.render` whose params are
    MuJoCo states. `assets`: {file name: bytes} for files the MJCF names that are not on
    disk, as MuJoCo's own `from_xml_path` takes them."""
    return World(path, assets)
