#!/usr/bin/env bash
# The real example: set up what is missing, copy pybullet_data's Franka Panda (its package://
# meshes as shipped), a table, a tray, a duck, a brick and a cube into ./robot_assets, render
# 48 frames of the moving arm in its Z-up world with RGB, depth, masks and labels into
# ./renders-robot, then export COCO (renders-robot/coco.json) and BOP (renders-robot/bop/).
# Extra arguments go to examples/example_robot.py (--frames N, --out DIR, --workers N).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python examples/example_robot.py "$@"
