"""Cameras on a shell around a point of interest, and keeping only views that show the objects.

`rc.sample.shell(center, radius=(1, 2), elevation=(10, 80), n=25, seed=rc.rng(params))`
returns n camera-to-world matrices (raycollect/camera.py's convention: the camera looks down
its own -Z, +Y up) looking exactly at `center`: directions uniform over the area of the part
of the sphere within the elevation and azimuth bounds, radius uniform within its bounds,
then a roll about the viewing axis (`inplane`). Angles are in degrees. Elevation is measured
from the horizontal plane (perpendicular to `up`), azimuth counter-clockwise seen from above,
from +X (towards +Y in a Z-up world, towards -Z in three.js's Y-up one: the same directions,
so a Z-up scene and its Y-up rendering get the same views).

Visibility is only known after rendering (occlusion by other objects, the extent of a mesh),
so it is a filter over rendered results, not a property of the sampler: `keep_visible` splits
results by their own labels, and `render_visible` renders, drops the views that fail, and
renders replacements drawn deterministically from the rejected job's params and the round
(`shell_redraw`). See `render_visible` for why it is a loop of runs and not a re-roll inside
the worker.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from .seeding import generator, rng

# The three axes (a, b, up) spanning the world: azimuth 0 is `a`, 90 degrees is `b`.
# Y-up is Z-up turned by raycollect/camera.py's Z_UP_TO_Y_UP ((x, y, z) -> (x, z, -y)), so
# Z-up's +Y is Y-up's -Z.
FRAMES = {"z": (np.array([1.0, 0, 0]), np.array([0, 1.0, 0]), np.array([0, 0, 1.0])),
          "y": (np.array([1.0, 0, 0]), np.array([0, 0, -1.0]), np.array([0, 1.0, 0]))}
# A camera this close to straight above or below the centre has no well defined "up" in the
# image; the azimuth's tangent is used instead (the limit of the general formula).
POLE_EPS = 1e-9
# Labels field of the visible fraction of an element (docs/ground-truth.md), and of its pixels.
VISIB_FIELD = "visib_fract"
PX_FIELD = "px"
DEFAULT_ROUNDS = 4


def _bounds(name: str, value, lo: float, hi: float) -> tuple[float, float]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = (value, value)
    try:
        a, b = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"shell: {name} must be a number or (min, max), got {value!r}") from None
    if not (math.isfinite(a) and math.isfinite(b)) or a > b or a < lo or b > hi:
        raise ValueError(f"shell: {name} must be (min, max) with {lo} <= min <= max <= {hi}, "
                         f"got {value!r}")
    return a, b


def camera_at(center: Sequence[float], direction: np.ndarray, radius: float,
              inplane_deg: float = 0.0, up: str = "y", azimuth_deg: float = 0.0) -> np.ndarray:
    """The camera-to-world matrix of a camera at center + radius * direction (unit), looking at
    center, image "up" towards the world's up, rolled by `inplane_deg` counter-clockwise as
    seen by the camera (the image content turns clockwise)."""
    a, b, u = FRAMES[up]
    back = np.asarray(direction, float)  # the camera's +Z points back, away from the centre
    x = np.cross(u, back)
    if np.linalg.norm(x) < POLE_EPS:  # straight above or below: the azimuth's tangent
        az = math.radians(azimuth_deg)
        x = -math.sin(az) * a + math.cos(az) * b
    x /= np.linalg.norm(x)
    y = np.cross(back, x)
    c, s = math.cos(math.radians(inplane_deg)), math.sin(math.radians(inplane_deg))
    x, y = c * x + s * y, -s * x + c * y
    m = np.eye(4)
    m[:3, 0], m[:3, 1], m[:3, 2] = x, y, back
    m[:3, 3] = np.asarray(center, float) + radius * back
    return m


def shell(center: Sequence[float], radius=(1.0, 2.0), elevation=(0.0, 90.0),
          azimuth=(0.0, 360.0), inplane=(0.0, 0.0), n: int = 1, seed: Any = None,
          up: str = "y") -> list[np.ndarray]:
    """n camera-to-world matrices on a shell around `center`, looking at it (module doc).

    radius: metres (min, max) or one number; elevation: degrees in [-90, 90] above the
    horizontal plane; azimuth: degrees, any range within [-360, 720]; inplane: degrees of roll
    in [-180, 180]. seed: an int, any JSON value or a Generator (`rc.rng(params)`); required,
    so that a job's cameras are the same on every render of it (raycollect/seeding.py)."""
    if up not in FRAMES:
        raise ValueError(f"shell: up must be 'y' or 'z', got {up!r}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"shell: n must be a non-negative int, got {n!r}")
    c = np.asarray(center, float)
    if c.shape != (3,) or not np.all(np.isfinite(c)):
        raise ValueError(f"shell: center must be 3 finite numbers, got {center!r}")
    r0, r1 = _bounds("radius", radius, 0.0, math.inf)
    if r0 <= 0:
        raise ValueError(f"shell: radius must be > 0, got {radius!r}")
    e0, e1 = _bounds("elevation", elevation, -90.0, 90.0)
    a0, a1 = _bounds("azimuth", azimuth, -360.0, 720.0)
    i0, i1 = _bounds("inplane", inplane, -180.0, 180.0)
    g = generator(seed)
    # Uniform over the sphere's area: the area between two elevations grows with the
    # difference of their sines (Archimedes' hat-box theorem), so sin(elevation) is uniform.
    # Every draw is made for all n at once, in a fixed order, so n views are a pure function
    # of the seed.
    s = g.uniform(math.sin(math.radians(e0)), math.sin(math.radians(e1)), n)
    az = g.uniform(a0, a1, n)
    rad = g.uniform(r0, r1, n)
    roll = g.uniform(i0, i1, n)
    a, b, u = FRAMES[up]
    out = []
    for k in range(n):
        el = math.asin(min(1.0, max(-1.0, s[k])))
        t = math.radians(az[k])
        d = math.cos(el) * (math.cos(t) * a + math.sin(t) * b) + math.sin(el) * u
        out.append(camera_at(c, d / np.linalg.norm(d), rad[k], roll[k], up, az[k]))
    return out


# --- visibility ------------------------------------------------------------------------------
def _objects(result) -> tuple[str, dict | None]:
    if isinstance(result, Mapping):  # a manifest line
        return result.get("job_id", "?"), result.get("objects")
    return getattr(result, "job_id", "?"), getattr(result, "objects", None)


def shows(result, require: Mapping[str, float], field: str = VISIB_FIELD) -> bool:
    """True when the frame's labels show every required element at least as much as asked:
    `require` maps element keys to a minimum of `field` (a visible fraction for
    "visib_fract", a pixel count for "px"). A required element the frame does not label is
    not shown. Needs the labels of the mask pass (masks=True)."""
    job, objects = _objects(result)
    if objects is None:
        raise ValueError(f"job {job}: field 'objects': no labels; render with masks=True to "
                         f"filter views by visibility")
    for key, least in require.items():
        entry = objects.get(key)
        if entry is None:
            return False
        if field not in entry:
            raise ValueError(f"job {job}: field 'objects.{key}.{field}': not in the labels "
                             f"(they hold {', '.join(sorted(entry))})")
        if entry[field] is None or entry[field] < least:
            return False
    return True


def keep_visible(results: Iterable, require: Mapping[str, float] | Sequence[str],
                 least: float = 0.5, field: str = VISIB_FIELD) -> tuple[list, list]:
    """(kept, rejected) results: kept show each required element at least `least` (or each
    key's own minimum when `require` is a mapping), by their own labels."""
    req = dict(require) if isinstance(require, Mapping) else {k: least for k in require}
    kept, rejected = [], []
    for r in results:
        (kept if shows(r, req, field) else rejected).append(r)
    return kept, rejected


def shell_redraw(center, radius=(1.0, 2.0), elevation=(0.0, 90.0), azimuth=(0.0, 360.0),
                 inplane=(0.0, 0.0), up: str = "y") -> Callable[[dict, int], dict]:
    """A `redraw` for render_visible: the rejected job's params with a new camera matrix from
    this shell, seeded by the whole rejected job (its camera included) and the round, so the
    replacement of a given job is always the same job."""
    def redraw(params: dict, round_: int) -> dict:
        g = rng({"job": params}, ["redraw", round_])
        m = shell(center, radius, elevation, azimuth, inplane, n=1, seed=g, up=up)[0]
        return {**params, "camera": {**params["camera"], "matrix": m.tolist()}}
    return redraw


@dataclass
class Visible:
    """What render_visible made: the kept frames (each shows what was required: a Result, or
    the manifest line of a job an earlier run on the same output rendered), the ids of the
    rendered jobs that were rejected, the jobs still rejected after the last round, and the
    run of each round."""

    kept: list = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    unresolved: list[dict] = field(default_factory=list)
    runs: list = field(default_factory=list)


def render_visible(jobs: Iterable[dict], require: Mapping[str, float] | Sequence[str],
                   redraw: Callable[[dict, int], dict], least: float = 0.5,
                   field: str = VISIB_FIELD, rounds: int = DEFAULT_ROUNDS,
                   **render_kwargs) -> Visible:
    """Render jobs and keep the frames that show the required elements; replace each rejected
    job by `redraw(params, round)` and render those, up to `rounds` times.

    Why a loop of runs over rendered results, and not a check and a re-roll inside the render
    worker: whether an element is visible depends on the frame (occlusion, the mesh's real
    extent), so only a render can say. A worker that re-rolled a camera until the frame passed
    would make a job's pixels depend on the attempt and on its history, and a rerun would
    record a different frame under the same params: exactly-once would no longer mean one
    frame per job (raycollect/seeding.py). Here every job, replacement or not, is an ordinary
    job whose params fully decide its frame; a replacement is a pure function of the rejected
    job and the round, and the rejection a pure function of its frame, so running the loop
    again after a crash submits the same jobs, and the output's journal skips those already
    done (their labels are read back from the output's manifest).

    Rejected frames stay in the output (a job once rendered is recorded, exactly once); the
    kept results, and `Visible.rejected`, say which frames the dataset should use. Needs
    masks=True. render_kwargs go to rc.render (keys= is refused: replacements need content
    ids)."""
    from .driver import render
    from .jobs import content_id, to_plain
    from .output.manifest import read_manifest

    if "keys" in render_kwargs:
        raise ValueError("render_visible: keys= is not supported (replacements are identified "
                         "by their content)")
    if not render_kwargs.get("masks"):
        raise ValueError("render_visible: needs masks=True (visibility comes from the labels)")
    req = dict(require) if isinstance(require, Mapping) else {k: least for k in require}
    out = Visible()
    todo = [to_plain(j) for j in jobs]
    for round_ in range(rounds + 1):
        if not todo:
            break
        ids = {content_id(p): p for p in todo}
        got = {}
        with render(list(ids.values()), **render_kwargs) as run:
            for r in run:
                got[r.job_id] = r
        out.runs.append(run)
        missing = [i for i in ids if i not in got]
        if missing and render_kwargs.get("out") is not None:  # done in an earlier run
            lines = {m["job_id"]: m for m in read_manifest(render_kwargs["out"])}
            got.update({i: lines[i] for i in missing if i in lines})
        kept, rejected = keep_visible([got[i] for i in ids if i in got], req, field=field)
        out.kept += kept
        rejected_ids = [_objects(r)[0] for r in rejected]
        out.rejected += rejected_ids
        if round_ == rounds:
            out.unresolved = [ids[i] for i in rejected_ids]
            break
        # Jobs that failed are neither kept nor redrawn: run.failures says why.
        todo = [redraw(ids[i], round_ + 1) for i in rejected_ids]
    return out
