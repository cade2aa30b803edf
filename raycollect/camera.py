"""Cameras: the matrix convention, look_at, pinhole intrinsics and validation of params["camera"].

Convention (three.js / OpenGL): a 4x4 camera-to-world matrix, row-major, the camera looking
down its own -Z with +Y up. Pixel coordinates: u to the right, v downward from the top row.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from . import constants as C
from .errors import InvalidJob
from .jobs import is_finite_number

DEFAULT_NEAR = 0.05
DEFAULT_FAR = 100.0
# The farthest a job camera sees: the revision marker (render/stage.py) sits beyond it.
MAX_FAR = 10_000.0
# Matrices whose rotation part has a determinant this far from +-1 are rejected as singular
# or scaled: the pinhole intrinsics we report would not describe them.
MATRIX_DET_TOLERANCE = 1e-3

# up="z" (ROS, pybullet, MuJoCo): the user's Z-up world is shown as three.js's Y-up one by a
# rotation of -90 degrees about X, (x, y, z) -> (x, z, -y): applied to the whole scene as one
# group and to every camera matrix, so cameras, placements and poses stay in the user's world.
Z_UP_TO_Y_UP = np.array([[1.0, 0, 0, 0], [0, 0, 1, 0], [0, -1, 0, 0], [0, 0, 0, 1]])
Z_UP_EULER = (-math.pi / 2, 0.0, 0.0)  # the same rotation as three.js Euler angles (XYZ)


def to_page(matrix: np.ndarray, up: str) -> np.ndarray:
    """A camera-to-world matrix of the user's world as one of the page's Y-up world."""
    return Z_UP_TO_Y_UP @ matrix if up == "z" else matrix


def look_at(eye: Sequence[float], target: Sequence[float],
            up: Sequence[float] = (0, 1, 0)) -> np.ndarray:
    """4x4 camera-to-world matrix of a camera at `eye` looking at `target`."""
    eye, target, up = (np.asarray(v, dtype=float) for v in (eye, target, up))
    back = eye - target  # the camera looks down -Z, so +Z points back from the target
    if np.linalg.norm(back) < 1e-12:
        raise ValueError("look_at: eye and target are the same point")
    z = back / np.linalg.norm(back)
    x = np.cross(up, z)
    if np.linalg.norm(x) < 1e-12:
        raise ValueError("look_at: up is parallel to the viewing direction")
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    m = np.eye(4)
    m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = x, y, z, eye
    return m


def intrinsics(fov: float, width: int, height: int) -> np.ndarray:
    """3x3 K in pixels for a vertical field of view in degrees (square pixels, centred)."""
    f = (height / 2) / math.tan(math.radians(fov) / 2)
    return np.array([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1.0]])


def project(points: np.ndarray, matrix: np.ndarray, K: np.ndarray) -> np.ndarray:
    """World points (N,3) to pixel (u, v) through a camera-to-world matrix and K."""
    pts = np.c_[np.asarray(points, dtype=float), np.ones(len(points))]
    cam = (np.linalg.inv(matrix) @ pts.T).T[:, :3]
    # three.js camera looks down -Z with +Y up; pixels have v downward.
    x, y, z = cam[:, 0], cam[:, 1], -cam[:, 2]
    return np.c_[K[0, 0] * x / z + K[0, 2], K[1, 2] - K[1, 1] * y / z]


def validate(job: str, params: Any) -> dict:
    """Check params["camera"] and return it normalised (floats, defaults filled in).

    Raises InvalidJob naming the job and the field on the first problem."""
    if not isinstance(params, dict):
        raise InvalidJob(job, "params", f"a job is a dict, got {type(params).__name__}")
    cam = params.get("camera")
    if cam is None:
        raise InvalidJob(job, "camera", "missing: every job needs params['camera'] with "
                         "matrix, fov, width, height")
    if not isinstance(cam, dict):
        raise InvalidJob(job, "camera", f"must be a dict, got {type(cam).__name__}")
    for key in cam:
        if key not in ("matrix", "fov", "width", "height", "near", "far"):
            raise InvalidJob(job, f"camera.{key}", "unknown camera field (matrix, fov, width, "
                             "height, near, far)")
    try:
        m = np.asarray(cam.get("matrix"), dtype=float)
    except (TypeError, ValueError):
        raise InvalidJob(job, "camera.matrix", "must be a 4x4 array of numbers") from None
    if m.shape == (16,):
        m = m.reshape(4, 4)
    if m.shape != (4, 4):
        raise InvalidJob(job, "camera.matrix", f"must be 4x4, got shape {m.shape}")
    if not np.all(np.isfinite(m)):
        raise InvalidJob(job, "camera.matrix", "has non-finite values")
    if not np.allclose(m[3], [0, 0, 0, 1]):
        raise InvalidJob(job, "camera.matrix", "last row must be [0, 0, 0, 1]")
    det = float(np.linalg.det(m[:3, :3]))
    if abs(abs(det) - 1) > MATRIX_DET_TOLERANCE or not np.allclose(
            m[:3, :3].T @ m[:3, :3], np.eye(3), atol=1e-3):
        raise InvalidJob(job, "camera.matrix", f"rotation part must be orthonormal "
                         f"(determinant {det:.4g}); singular or scaled matrices have no pinhole K")
    out: dict = {"matrix": m.tolist()}
    for key in ("width", "height"):
        v = cam.get(key)
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        if not isinstance(v, int) or isinstance(v, bool):
            raise InvalidJob(job, f"camera.{key}", f"must be an integer number of pixels, got {v!r}")
        if not C.MIN_IMAGE_SIDE <= v <= C.MAX_IMAGE_SIDE:
            raise InvalidJob(job, f"camera.{key}", f"must be within {C.MIN_IMAGE_SIDE}.."
                             f"{C.MAX_IMAGE_SIDE} px, got {v}")
        out[key] = v
    fov = cam.get("fov")
    if not is_finite_number(fov) or not 0 < fov < 180:
        raise InvalidJob(job, "camera.fov", f"must be a vertical angle in degrees, 0 < fov < 180, got {fov!r}")
    out["fov"] = float(fov)
    near, far = cam.get("near", DEFAULT_NEAR), cam.get("far", DEFAULT_FAR)
    if not is_finite_number(near) or near <= 0:
        raise InvalidJob(job, "camera.near", f"must be > 0, got {near!r}")
    if not is_finite_number(far) or not near < far <= MAX_FAR:
        raise InvalidJob(job, "camera.far", f"must be within near..{MAX_FAR}, got {far!r}")
    out["near"], out["far"] = float(near), float(far)
    return out


def camera_record(cam: dict) -> dict:
    """What a result and the manifest say about a frame's camera."""
    return {"matrix": cam["matrix"], "K": intrinsics(cam["fov"], cam["width"], cam["height"]).tolist(),
            "width": cam["width"], "height": cam["height"], "fov": cam["fov"],
            "near": cam["near"], "far": cam["far"]}
