"""MuJoCo worlds: MJCF models as raycollect scenes, checked against MuJoCo's own renderer.

    world.py      rc.mjcf(path) -> World: params (qpos, ...) -> one element per body; cameras
    geoms.py      each MuJoCo geom as a Vuer element in its body's frame
    files.py      the model's meshes as float32 PLY files, the folder the world serves

MuJoCo's own renderer as the reference these are checked against is in
raycollect/testing/mjcf_reference.py. Needs the `mujoco` package: `pip install 'raycollect[mujoco]'`.
"""

from .world import World, mjcf

__all__ = ["World", "mjcf"]
