#!/usr/bin/env python
"""`raycollect browsers` as a script: keep one headless Chromium page attached to every render
worker of this node, following the queue's registry, until interrupted.

  python scripts/launch_browsers.py --address auto [--queue raycollect] [--chromium PATH]
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from raycollect.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["browsers", *sys.argv[1:]]))
