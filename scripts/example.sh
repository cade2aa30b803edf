#!/usr/bin/env bash
# The example with real mesh files: set up what is missing, write the example assets (a
# dense sphere OBJ, a PLY disc, a two-link URDF arm with STL meshes) into ./example_assets,
# then render an orbit of them with RGB, depth and instance masks into ./renders-example.
# Extra arguments go to `raycollect run`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python -m raycollect.meshgen example_assets
exec .venv/bin/raycollect run --scene raycollect.scene:example_scene --assets example_assets \
    --views 16 --size 320x240 --depth --masks --out renders-example "$@"
