"""Looks: randomised lights, materials, textures and backgrounds, each a pure function of a
random generator and its bounds.

Every function takes `g`, a numpy Generator: pass `rc.rng(params, "lights")` (one stream per
randomiser, raycollect/seeding.py), so that a job's looks are decided by its params alone and
a rerun renders the same frame. Each returns vuer elements, or props to splat into one:

    g = rc.rng(params, "looks")
    [*rc.randomize.lights(g, center=[0, 0, 0], up="z"),
     Box(key="crate", args=[0.3] * 3, **rc.randomize.material(g, textures=floor_images))]

What the client does with them (vuer 0.1.6's client, checked against its bundle): lights are
three.js lights built from (color, intensity); directional and spot lights point at the world
origin (three.js's default target: keep the objects of interest near it). Primitives (Box,
Plane, Sphere, ...) take `materialType` and `material` (color, roughness, metalness, and
`map`: a texture image URL, with `mapRepeat` [u, v] tiling it); loaded meshes (Obj, Glb, ...)
take the same `materialType` and `material` and replace their own materials with it. Texture
images are files of the assets folder (raycollect/assets.py), listed in a fixed order by
`textures`, so that the same draw picks the same image on every machine.
"""

from __future__ import annotations

import colorsys
import math
import os
from pathlib import Path
from typing import Sequence

import numpy as np
from vuer.schemas import AmbientLight, BackgroundColor, DirectionalLight, PointLight, SpotLight

from .assets import asset
from .sample import shell

LIGHT_KINDS = ("directional", "point", "spot")
# Intensity bounds per kind, in three.js's physical units (r182, the client's): a directional
# light's intensity is its irradiance (a white Lambert surface facing it reflects I / pi), a
# point or spot light's is candela, falling off with the square of the distance, so lights
# 1.5-3 m away need about 10x more to light the scene as much.
INTENSITY = {"directional": (0.8, 3.0), "point": (8.0, 40.0), "spot": (8.0, 40.0)}
AMBIENT_INTENSITY = (0.1, 0.6)
# Lights tinted at most this saturated (0: white): coloured light, but not a disco.
LIGHT_SATURATION = (0.0, 0.3)
SPOT_ANGLE = (math.radians(20), math.radians(50))
SPOT_PENUMBRA = (0.0, 0.5)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
TEXTURE_REPEAT = (1.0, 4.0)


def _uniform(g: np.random.Generator, bounds, name: str) -> float:
    if isinstance(bounds, (int, float)) and not isinstance(bounds, bool):
        return float(bounds)
    try:
        lo, hi = (float(b) for b in bounds)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number or (min, max), got {bounds!r}") from None
    if not lo <= hi:
        raise ValueError(f"{name} must be (min, max) with min <= max, got {bounds!r}")
    return float(g.uniform(lo, hi))


def _check(g) -> np.random.Generator:
    if not isinstance(g, np.random.Generator):
        raise TypeError(f"randomisers take a numpy Generator (rc.rng(params, 'name')), got "
                        f"{type(g).__name__}")
    return g


def color(g: np.random.Generator, saturation=(0.0, 1.0), value=(0.15, 1.0)) -> str:
    """A CSS colour "#rrggbb": hue uniform, saturation and value (HSV) within bounds."""
    _check(g)
    h = float(g.uniform(0.0, 1.0))
    s, v = _uniform(g, saturation, "saturation"), _uniform(g, value, "value")
    r, gg, b = colorsys.hsv_to_rgb(h, s, v)
    return "#%02x%02x%02x" % tuple(int(round(255 * c)) for c in (r, gg, b))


def lights(g: np.random.Generator, count=(1, 3), kinds: Sequence[str] = LIGHT_KINDS,
           intensity: dict | None = None, saturation=LIGHT_SATURATION,
           center: Sequence[float] = (0.0, 0.0, 0.0), radius=(1.5, 3.0),
           elevation=(20.0, 80.0), azimuth=(0.0, 360.0), up: str = "y",
           key: str = "light") -> list:
    """`count` lights (an int, or (min, max) inclusive) of the given kinds, each with a random
    tint and an intensity within its kind's bounds (INTENSITY, or `intensity` {kind: (min,
    max)}), placed on a shell around `center` (raycollect/sample.py). Keys are key-0, key-1...
    """
    _check(g)
    unknown = [k for k in kinds if k not in LIGHT_KINDS]
    if not kinds or unknown:
        raise ValueError(f"lights: kinds must be some of {', '.join(LIGHT_KINDS)}, got {kinds!r}")
    bounds = {**INTENSITY, **(intensity or {})}
    if isinstance(count, int) and not isinstance(count, bool):
        n = count
    else:
        lo, hi = count
        n = int(g.integers(int(lo), int(hi) + 1))
    if n < 0:
        raise ValueError(f"lights: count must be >= 0, got {count!r}")
    # The positions are drawn first and all at once, so a light's place does not depend on
    # what the lights before it drew.
    places = shell(center, radius, elevation, azimuth, n=n, seed=g, up=up)
    out = []
    for i, m in enumerate(places):
        kind = kinds[int(g.integers(len(kinds)))]
        props = dict(key=f"{key}-{i}", position=[float(x) for x in m[:3, 3]],
                     color=color(g, saturation, (1.0, 1.0)),
                     intensity=_uniform(g, bounds[kind], f"intensity[{kind}]"))
        if kind == "directional":
            out.append(DirectionalLight(**props))
        elif kind == "point":
            out.append(PointLight(**props))
        else:
            out.append(SpotLight(**props, angle=_uniform(g, SPOT_ANGLE, "angle"),
                                 penumbra=_uniform(g, SPOT_PENUMBRA, "penumbra")))
    return out


def ambient(g: np.random.Generator, intensity=AMBIENT_INTENSITY, saturation=LIGHT_SATURATION,
            key: str = "ambient") -> AmbientLight:
    """An ambient light of random tint and intensity."""
    _check(g)
    return AmbientLight(key=key, intensity=_uniform(g, intensity, "intensity"),
                        color=color(g, saturation, (1.0, 1.0)))


def textures(assets_dir: str | os.PathLike, folder: str = "") -> list[str]:
    """The asset URLs (raycollect/assets.py `asset`) of the images in `folder` of the assets
    folder, sorted: a directory lists in no fixed order, and a draw must pick the same image
    on every machine."""
    root = Path(assets_dir).resolve()
    base = (root / folder).resolve()
    if not base.is_relative_to(root):
        raise ValueError(f"textures: {folder!r} leaves the assets folder {assets_dir}")
    if not base.is_dir():
        raise ValueError(f"textures: {base} is not a folder")
    found = sorted(p.relative_to(root).as_posix() for p in base.rglob("*")
                   if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not found:
        raise ValueError(f"textures: no {'/'.join(IMAGE_SUFFIXES)} images in {base}")
    return [asset(p) for p in found]


def material(g: np.random.Generator, colors: bool = True, saturation=(0.0, 1.0),
             value=(0.15, 1.0), roughness=(0.2, 1.0), metalness=(0.0, 0.6),
             textures: Sequence[str] | None = None, repeat=TEXTURE_REPEAT,
             material_type: str = "standard") -> dict:
    """Props for a primitive or a loaded mesh: {"materialType", "material": {color, roughness,
    metalness[, map, mapRepeat]}}. With `textures` (asset URLs, `textures()`), one image is
    drawn and tiled `repeat` times (square tiles) across the surface; its colour then tints
    it (white when `colors` is False)."""
    _check(g)
    mat: dict = {"color": color(g, saturation, value) if colors else "#ffffff",
                 "roughness": _uniform(g, roughness, "roughness"),
                 "metalness": _uniform(g, metalness, "metalness")}
    if textures:
        mat["map"] = textures[int(g.integers(len(textures)))]
        k = _uniform(g, repeat, "repeat")
        mat["mapRepeat"] = [k, k]
    return {"materialType": material_type, "material": mat}


def background(g: np.random.Generator, saturation=(0.0, 0.5), value=(0.1, 0.9),
               key: str = "background") -> BackgroundColor:
    """A random background colour (what the frame shows where nothing is drawn; it never
    shows in depth or masks)."""
    _check(g)
    return BackgroundColor(key=key, color=color(g, saturation, value))
