#!/usr/bin/env python
"""The `raycollect run` driver as a script, for `ray job submit` and `ray submit`.

  ray job submit --working-dir . -- python scripts/collect.py --address auto --out /data/renders
  ray submit examples/cluster.yaml scripts/collect.py -- --address auto --workers auto

Takes the same options as `raycollect run` (see --help). --address auto joins the cluster
the script runs on.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from raycollect.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["run", *sys.argv[1:]]))
