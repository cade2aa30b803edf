"""A MuJoCo rollout rendered from the model's own cameras and an orbit: RGB, depth, masks.

dm_control's humanoid (`dm_control/suite/humanoid.xml`, as it ships) under random actions:
MuJoCo steps the simulation here, each recorded state (qpos) becomes jobs for the MJCF's
three cameras (two of them follow the torso) and one orbiting camera. raycollect renders
them with its workers; masks and labels are per MuJoCo body, poses are MuJoCo's body frames.

    PYTHONPATH=. .venv/bin/python examples/mujoco_rollout.py [--out renders-mujoco]
        [--frames 16] [--workers 2]

The output folder holds frames/, manifest.jsonl and contact_sheet.png.
"""

from __future__ import annotations

import argparse
import math
import os

import numpy as np

import raycollect as rc

W, H = 320, 240
STEPS_PER_FRAME = 25  # simulation steps between recorded frames (0.125 s at 5 ms)
ORBIT_RADIUS, ORBIT_HEIGHT = 3.5, 1.6


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


def jobs(world, states: list) -> list[dict]:
    out = []
    for step, qpos in enumerate(states):
        state = {"qpos": qpos}
        for name in world.cameras():  # the MJCF's cameras, in this state
            out.append({"step": step, "view": name, **state,
                        "camera": world.camera(name, W, H, state=state)})
        # An orbit around where the torso is now.
        torso = world.forward(state).xpos[world.model.body("torso").id]
        a = 2 * math.pi * step / len(states)
        eye = torso + [ORBIT_RADIUS * math.cos(a), ORBIT_RADIUS * math.sin(a), ORBIT_HEIGHT]
        cam = world.camera(0, W, H)
        cam["matrix"] = rc.look_at(eye, torso, up=(0, 0, 1)).tolist()
        out.append({"step": step, "view": "orbit", **state, "camera": cam})
    return out


def main() -> None:
    from dm_control import suite

    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="renders-mujoco")
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    world = rc.mjcf(os.path.join(os.path.dirname(suite.__file__), "humanoid.xml"))
    todo = jobs(world, record(world, args.frames))
    # up="z" and the world's mesh folder come with the world.
    with rc.render(todo, scene=world, workers=args.workers, out=args.out, depth=True,
                   masks=True) as run:
        for r in run:
            torso = r.objects["torso"]
            print(f"step {r.params['step']:2d} {r.params['view']:>10}: torso "
                  f"{np.round(np.asarray(torso['pose'])[:3, 3], 3).tolist()}, "
                  f"{torso['px']} px, {len(r.instances)} bodies")
    print(run.summary["rendered"], "frames in", args.out, "(contact_sheet.png)")


if __name__ == "__main__":
    main()
