"""Fetch robosuite's MJCF files (its wheel's robosuite/models/assets) without installing
robosuite, whose requirements would make pip replace numpy: the MuJoCo tests compare its
Panda on its table against MuJoCo's renderer (tests/test_mujoco.py). Prints the folder to
set $RAYCOLLECT_ROBOSUITE_ASSETS to; exits 1 (saying why) when it cannot fetch it, and the
tests that need it then skip, naming the variable.

    .venv/bin/python scripts/fetch_robosuite.py [--into .cache/robosuite]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import zipfile
from pathlib import Path

VERSION = "1.5.2"  # the release whose files the tests were checked with
MEMBERS = "robosuite/models/assets/"
DONE = ".complete"


def fetch(into: Path) -> Path:
    assets = into / MEMBERS
    if (into / DONE).exists():
        return assets
    into.mkdir(parents=True, exist_ok=True)
    wheels = into / "wheel"
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                    "--only-binary=:all:", "-d", str(wheels), f"robosuite=={VERSION}"],
                   check=True)
    wheel = next(wheels.glob(f"robosuite-{VERSION}-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        z.extractall(into, [n for n in z.namelist() if n.startswith(MEMBERS)])
    wheel.unlink()  # 150 MB, of which the MJCF files are a part
    (into / DONE).touch()
    return assets


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--into", type=Path, default=Path(".cache/robosuite"))
    args = ap.parse_args()
    try:
        print(fetch(args.into).resolve())
    except (subprocess.CalledProcessError, StopIteration, OSError, zipfile.BadZipFile) as e:
        print(f"robosuite {VERSION}'s files could not be fetched ({e}); the tests that need "
              f"them will skip", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
