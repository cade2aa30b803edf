"""A MuJoCo rollout vs camera-only jobs of the same MJCF world (issue 26 goal: >= 0.8).

dm_control's suite model (manipulator by default) or robosuite's Panda on its table arena
(`--model panda`, robosuite's files as raycollect/mjcf/robosuite.py finds them: the test
command fetches them, scripts/fetch_robosuite.py), 1 worker, 320x240, Z-up. Rollout: every
job a new simulation state (MuJoCo steps the model under scripted sinusoidal controls, each
job records qpos): the page sets each view's body poses, nothing is reloaded. Camera-only:
the first state in every job. Both take the same sequence of orbit cameras, so they draw
comparable images: what a frame costs on llvmpipe depends mostly on what the camera sees
(manipulator's own "fixed" camera took 2x the page time of these orbit views, state or no
state), and the ratio is meant to show what the state costs. Rounds alternate; medians.

    PYTHONPATH=. .venv/bin/python scripts/bench/bench_mujoco.py [--model manipulator.xml|panda]
        [--jobs 200] [--rounds 2] [--masks]
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time

import numpy as np
import ray

import raycollect as rc

W, H = 320, 240
# Simulation steps between two recorded frames (at the suite's 2-10 ms timesteps, a few
# hundredths of a second of motion per frame).
STEPS_PER_FRAME = 10
# Where the orbit cameras look from and at: (radius, height, target) per model.
ORBITS = {"panda": (1.8, 1.7, [-0.4, 0.0, 1.0]), None: (1.4, 0.9, [0.0, 0.0, 0.3])}


def rollout(world, n: int) -> list[list[float]]:
    """qpos of `n` frames of the model driven by sinusoidal controls (a scripted policy)."""
    import mujoco

    model = world.model
    data = mujoco.MjData(model)
    out = []
    for i in range(n):
        data.ctrl[:] = np.sin(0.05 * i + np.arange(model.nu))
        for _ in range(STEPS_PER_FRAME):
            mujoco.mj_step(model, data)
        out.append(data.qpos.tolist())
    return out


def orbit(world, i: int, n: int, radius: float, height: float, target: list) -> dict:
    cam = world.camera(0, W, H)
    a = 2 * math.pi * i / n
    eye = [target[0] + radius * math.cos(a), target[1] + radius * math.sin(a), height]
    cam["matrix"] = rc.look_at(eye, target, up=(0, 0, 1)).tolist()
    return cam


def jobs(world, kind: str, states: list, tag: int, view: tuple) -> list[dict]:
    n = len(states)
    return [{"tag": tag, "qpos": q if kind == "rollout" else states[0],
             "camera": orbit(world, i, n, *view)} for i, q in enumerate(states)]


def load(model: str):
    """The world of `model`: a dm_control suite file, or "panda" (robosuite's)."""
    if model == "panda":
        from raycollect.mjcf import robosuite

        assets = robosuite.assets_dir()
        if assets is None:
            raise SystemExit(f"robosuite's MJCF files not found: set ${robosuite.ENV} "
                             "(.venv/bin/python scripts/fetch_robosuite.py prints the folder)")
        return rc.mjcf(robosuite.scene(assets, robot="panda", arena="table_arena"))
    from dm_control import suite

    return rc.mjcf(os.path.join(os.path.dirname(suite.__file__), model))


def rate(world, kind, states, tag, masks, view) -> tuple[float, int]:
    with rc.render(jobs(world, kind, states, tag, view), scene=world, workers=1, masks=masks,
                   depth=masks, progress=False) as run:
        stamps = [time.perf_counter() for _ in run]
    assert run.summary["failed"] == 0, run.failures
    updates = sum(w["scene_updates"] for w in run.summary["by_worker"].values())
    return (len(stamps) - 1) / (stamps[-1] - stamps[0]), updates


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="manipulator.xml",
                    help="a file of dm_control/suite, or panda (robosuite's, on its table)")
    ap.add_argument("--jobs", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--masks", action="store_true", help="with depth, masks and labels")
    args = ap.parse_args()
    world = load(args.model)
    view = ORBITS.get(args.model, ORBITS[None])
    states = rollout(world, args.jobs)
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False)
    rates = {"rollout": [], "camera-only": []}
    updates = {}
    try:
        for r in range(args.rounds):
            for kind in rates:
                fps, updates[kind] = rate(world, kind, states, r, args.masks, view)
                rates[kind].append(fps)
            print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.1f}" for k, v in rates.items())
                  + " frames/s")
    finally:
        ray.shutdown()
    roll, cam_only = (statistics.median(rates[k]) for k in ("rollout", "camera-only"))
    print(f"{args.model}, {args.jobs} jobs, {W}x{H}, 1 worker"
          f"{', depth + masks + labels' if args.masks else ''}: rollout {roll:.1f} frames/s "
          f"({updates['rollout']} scene updates), camera-only {cam_only:.1f} frames/s "
          f"({updates['camera-only']} scene updates), ratio {roll / cam_only:.2f}")


if __name__ == "__main__":
    main()
