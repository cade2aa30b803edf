"""Seeded randomness per job: `rc.rng(params)`, a random generator that is a pure function of
the job's params.

Why it matters: a job is identified by its params (raycollect/jobs.py `content_id`), the
queue may hand it to any worker, in any order, and a job whose lease expired or whose worker
died is rendered again (docs/design.md). Exactly-once only means something if every render of
a job is the same frame. A scene that draws from `random` or an unseeded numpy generator
renders different pixels on each attempt, so a rerun would record a frame that does not match
the params in its manifest line. Draw every random choice from `rc.rng(params)` instead: the
same params give the same draws on every machine and every attempt; different params (another
scene index, another `seed`) give independent draws.

The camera is left out on purpose: views of one scene share its lights, materials and
placements, so jobs that differ only in the camera still update by camera alone (README,
"Jobs"). For looks that change every frame, put a frame index in the params.

`salt` names a stream: `rc.rng(params, "lights")` and `rc.rng(params, "materials")` are
independent, so adding a randomiser for one never shifts the draws of another.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from .jobs import canonical_json, to_plain

# 128 bits of the digest seed numpy's PCG64 (it takes any non-negative int; 128 bits make two
# different params collide with negligible probability).
SEED_BYTES = 16
CAMERA_KEY = "camera"


def seed_of(params: dict, salt: Any = None) -> int:
    """The integer seed of `params` (minus the camera) and `salt`: blake2b of their canonical
    JSON, the same digest raycollect uses for job ids."""
    if not isinstance(params, dict):
        raise TypeError(f"rc.rng takes a job's params (a dict), got {type(params).__name__}")
    try:
        plain = to_plain({k: v for k, v in params.items() if k != CAMERA_KEY})
        salt = to_plain(salt, "salt")
    except ValueError as e:
        raise ValueError(f"rc.rng: {e}") from None
    text = canonical_json({"params": plain, "salt": salt})
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=SEED_BYTES).digest(),
                          "big")


def rng(params: dict, salt: Any = None) -> np.random.Generator:
    """A numpy Generator that is a pure function of `params` (without "camera") and `salt`
    (any JSON value: a seed, a stream name, a list of both)."""
    return np.random.default_rng(seed_of(params, salt))


def generator(seed: Any) -> np.random.Generator:
    """`seed` as a Generator: a Generator is used as it is (so callers can pass
    `rc.rng(params)`), an int or any JSON value is hashed as `rng({}, seed)` does. None is
    refused: an unseeded draw is exactly what this module exists to prevent."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None:
        raise ValueError("seed is required (an int, any JSON value, or rc.rng(params)): an "
                         "unseeded draw would render different frames on a rerun")
    return rng({}, seed)
