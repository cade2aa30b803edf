"""A MuJoCo rollout rendered from the model's own cameras and an orbit: RGB, depth, masks.

robosuite's Panda on its table arena (the MJCF files of robosuite's wheel, mounted together
by raycollect/mjcf/robosuite.py; robosuite's own package need not be installed: point
$RAYCOLLECT_ROBOSUITE_ASSETS at `robosuite/models/assets` of its unpacked wheel) under a
scripted policy: a joint-space PD controller with gravity compensation tracking sinusoids
about robosuite's home pose, stepped by MuJoCo here. Each recorded state (qpos) becomes jobs
for three MJCF cameras (frontview, agentview and the wrist camera robot0_eye_in_hand, which
follows the hand) and one orbiting camera. Without robosuite's files, dm_control's humanoid
under random actions (its three cameras, two following the torso). raycollect renders them
with its workers; masks and labels are per MuJoCo body, poses are MuJoCo's body frames.

    PYTHONPATH=. .venv/bin/python examples/mujoco_rollout.py [--out renders-mujoco]
        [--frames 16] [--workers 2] [--size 320x240] [--model panda|humanoid]

The output folder holds frames/, manifest.jsonl and contact_sheet.png.
"""

from __future__ import annotations

import argparse
import math
import os

import numpy as np

import raycollect as rc

SIZE = "320x240"
STEPS_PER_FRAME = 25  # simulation steps between recorded frames
ORBIT_RADIUS, ORBIT_HEIGHT = 3.5, 1.6
# robosuite's Panda: its home pose (robosuite's init_qpos), the cameras, the PD gains.
PANDA_HOME = [0.0, np.pi / 16, 0.0, -np.pi / 2 - np.pi / 3, 0.0, np.pi - 0.2, np.pi / 4]
PANDA_CAMERAS = ("frontview", "agentview", "robot0_eye_in_hand")
KP, KD = 200.0, 20.0


def record(world, frames: int, seed: int = 0) -> list[list[float]]:
    """qpos of `frames` states of a rollout of uniformly random actions."""
    import mujoco

    model, rng = world.model, np.random.default_rng(seed)
    data = mujoco.MjData(model)
    states = []
    for _ in range(frames):
        lo, hi = model.actuator_ctrlrange.T
        data.ctrl[:] = rng.uniform(lo, hi)
        for _ in range(STEPS_PER_FRAME):
            mujoco.mj_step(model, data)
        states.append(data.qpos.tolist())
    return states


def record_panda(world, frames: int) -> list[list[float]]:
    """qpos of `frames` states of the Panda tracking joint-space sinusoids about its home
    pose: torques from a PD controller plus MuJoCo's gravity and Coriolis terms."""
    import mujoco

    model = world.model
    data = mujoco.MjData(model)
    data.qpos[:7] = PANDA_HOME
    mujoco.mj_forward(model, data)
    dofs = [int(model.jnt_dofadr[model.actuator_trnid[a, 0]]) for a in range(model.nu)]
    states = []
    for i in range(frames * STEPS_PER_FRAME):
        t = data.time
        target = np.asarray(PANDA_HOME) + 0.35 * np.sin(0.8 * t + np.arange(7))
        q, qd = data.qpos[dofs], data.qvel[dofs]
        torque = KP * (target - q) - KD * qd + data.qfrc_bias[dofs]
        lo, hi = model.actuator_ctrlrange.T
        data.ctrl[:] = np.clip(torque, lo, hi) if model.actuator_ctrllimited.any() else torque
        mujoco.mj_step(model, data)
        if (i + 1) % STEPS_PER_FRAME == 0:
            states.append(data.qpos.tolist())
    return states


def jobs(world, states: list, cameras, focus: str, radius: float, height: float,
         size: tuple[int, int]) -> list[dict]:
    w, h = size
    out = []
    for step, qpos in enumerate(states):
        state = {"qpos": qpos}
        for name in cameras:  # the MJCF's cameras, in this state
            out.append({"step": step, "view": name, **state,
                        "camera": world.camera(name, w, h, state=state)})
        # An orbit around where the focus body is now.
        centre = world.forward(state).xpos[world.model.body(focus).id]
        a = 2 * math.pi * step / len(states)
        eye = centre + [radius * math.cos(a), radius * math.sin(a), height]
        cam = world.camera(0, w, h)
        cam["matrix"] = rc.look_at(eye, centre, up=(0, 0, 1)).tolist()
        out.append({"step": step, "view": "orbit", **state, "camera": cam})
    return out


def main(argv: list[str] | None = None):
    """The command line; returns the finished run (its summary, failures)."""
    from raycollect.mjcf import robosuite

    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="renders-mujoco")
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--size", default=SIZE, help="WIDTHxHEIGHT of every view")
    ap.add_argument("--model", choices=["panda", "humanoid"], default=None,
                    help="panda (robosuite's files needed) or humanoid; panda when found")
    args = ap.parse_args(argv)
    size = tuple(int(v) for v in args.size.lower().split("x"))
    assets = robosuite.assets_dir()
    model = args.model or ("panda" if assets else "humanoid")
    if model == "panda":
        if assets is None:
            raise SystemExit(f"robosuite's MJCF files not found: set ${robosuite.ENV}")
        world = rc.mjcf(robosuite.scene(assets, robot="panda", arena="table_arena"))
        todo = jobs(world, record_panda(world, args.frames), PANDA_CAMERAS, "robot0_link7",
                    1.6, 0.6, size)
        focus = "robot0_link7"
    else:
        from dm_control import suite

        world = rc.mjcf(os.path.join(os.path.dirname(suite.__file__), "humanoid.xml"))
        todo = jobs(world, record(world, args.frames), world.cameras(), "torso",
                    ORBIT_RADIUS, ORBIT_HEIGHT, size)
        focus = "torso"
    # up="z" and the world's files (meshes, textures) come with the world.
    with rc.render(todo, scene=world, workers=args.workers, out=args.out, depth=True,
                   masks=True) as run:
        for r in run:
            body = r.objects[focus]
            print(f"step {r.params['step']:2d} {r.params['view']:>18}: {focus} "
                  f"{np.round(np.asarray(body['pose'])[:3, 3], 3).tolist()}, "
                  f"{body['px']} px, {len(r.instances)} bodies")
    print(run.summary["rendered"], "frames in", args.out, "(contact_sheet.png)")
    return run


if __name__ == "__main__":
    main()
