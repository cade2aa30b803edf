"""Tools for testing and measuring raycollect, kept out of the runtime (numpy.testing is the
model): nothing that `import raycollect`, `rc.render` or the CLI loads imports them, so they
may need what a user did not install (pybullet, psutil).

    reference.py  pybullet as an independent renderer of URDF scenes (raycollect[reference])
    mjcf_reference.py  mujoco.Renderer as the reference for MJCF worlds (raycollect[mujoco])
    soak.py       a long run with every process sampled through psutil
    scenes.py     example_scene: real mesh files from an assets folder
    chaos.py      kill a run's browser as a crash would
"""
