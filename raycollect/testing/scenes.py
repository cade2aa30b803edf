"""Scenes for tests and benchmarks, beside the demo (raycollect/scene.py)."""

from __future__ import annotations

import math

from vuer.schemas import AmbientLight, DirectionalLight, Plane, Sphere


def example_scene(params: dict) -> list:
    """Real mesh files from an assets folder written by `python examples/meshgen.py DIR`:
    a dense sphere (OBJ, a few MB), a disc (PLY with vertex colours) and a two-link arm (URDF
    whose links load STL meshes by relative paths), on a ground plane.

    Render it with `raycollect run --scene raycollect.testing.scenes:example_scene --assets DIR`.
    Optional params: "primitive" (true: a Sphere primitive instead of the OBJ, for comparing
    the cost of a loaded model)."""
    from vuer.schemas import Obj, Ply, Urdf

    from ..assets import asset

    sphere = (Sphere(key="sphere", args=[0.5, 320, 160], position=[-0.9, 0.5, 0.2],
                     materialType="standard", material={"color": "#cccccc"})
              if params.get("primitive") else
              Obj(key="sphere", src=asset("meshes/sphere.obj"), position=[-0.9, 0.5, 0.2]))
    return [
        AmbientLight(key="ambient", intensity=0.6),
        DirectionalLight(key="sun", position=[3, 6, 4], intensity=2.0),
        Plane(key="ground", args=[40, 40], rotation=[-math.pi / 2, 0, 0],
              materialType="standard", material={"color": "#8d99ae"}),
        sphere,
        Ply(key="disc", src=asset("meshes/disc.ply"), position=[0.9, 0.15, -0.3]),
        Urdf(key="arm", src=asset("robot/arm.urdf"), position=[0.2, 0.1, 1.0]),
    ]
