"""The names two or more modules share: defaults the CLI and Config both offer, limits the
validation and the CLI both check, an output's layout. A number only one module uses lives
in that module, beside its reason.

Times are seconds, sizes are pixels or counts.
"""

# --- queue -------------------------------------------------------------------------------
DEFAULT_QUEUE_NAME = "raycollect"
RAY_NAMESPACE = "raycollect"
DEFAULT_LEASE_TTL = 30.0
DEFAULT_MAX_ATTEMPTS = 3
# A submit batch is one journal transaction; bigger submits are cut into batches of this.
# The driver validates and submits a run's jobs in chunks of this size while it renders.
SUBMIT_CHUNK = 10_000

# --- camera and images -------------------------------------------------------------------
# Views of 8x8 pixels and less are the revision marker's, which the page renders no extra
# passes for (raycollect/render/capture_js/): job images are larger.
MIN_IMAGE_SIDE = 16
MAX_IMAGE_SIDE = 4096
# Instance masks are written as 16-bit PNGs: ids 1..65535, 0 is "no element".
MAX_INSTANCES = 65_535
# image_format: name -> (suffix, what it is). scripts/bench/bench.py's encode table measures each.
IMAGE_FORMATS = {
    "png": (".png", "PNG, fastest deflate (the default: ~1.5 ms per 640x480 frame)"),
    "png-small": (".png", "PNG as PIL writes it at level 6: smaller files, ~10x the encode"),
    "webp": (".webp", "lossless WebP (method 0): smaller than PNG, ~4x the default's encode"),
    "npy": (".npy", "raw uint8 H x W x 3 array: no encode at all, 6x the bytes of png"),
}

# --- render workers ----------------------------------------------------------------------
LOOPBACK = "127.0.0.1"
# Camera views per scene update, at most. Every view owns a WebGL context, and so do the
# revision marker's view and the page's own canvas; Chromium keeps 16 per page and drops the
# oldest past that. 14 views keep every context: at 15 (17 contexts, one past the limit) a
# worker's page stopped showing updates in 3 of 4 runs of tests/test_faults.py's browser-kill
# test (at 14: 0 of 4); at 16 the marker view's is dropped and every job fails after its
# settle timeouts.
MAX_VIEWS_PER_UPDATE = 14
# By default, for jobs that differ only in their camera, the most the page can hold. Each
# update costs a settle, so more views per update is faster, for the browser and for the
# driver, which records a worker's frames one update at a time (measured with 15 against 8:
# 160x120, 1 worker, 59-74 against 53-58 frames/s; 640x480, 2 workers, 16-20 against 13-15
# frames/s and 0.70-0.72 against 1.07-1.17 ms of driver CPU per frame).
VIEWS_PER_UPDATE = MAX_VIEWS_PER_UPDATE

# --- browsers ----------------------------------------------------------------------------
CHROMIUM_ENV = "RAYCOLLECT_CHROMIUM"
BROWSER_RECYCLE_JOBS = 5_000

# --- driver and output -------------------------------------------------------------------
DEFAULT_WORKERS = 2
CONTACT_SHEET_MAX_FRAMES = 64

# One writer per output (raycollect/output/lock.py): the holder touches its lock this often, and a
# lock untouched this long is stale (its run died, on this host or another).
LOCK_HEARTBEAT = 5.0
LOCK_STALE = 60.0
STATE_DIR = ".raycollect"  # an output's queue journal and lock
JOURNAL_NAME = "queue.sqlite"  # the queue's journal, in STATE_DIR (or a store output's cache)

# --- object store outputs (raycollect/output/store.py) --------------------------------------
# A store that fails is retried with backoff (first, longest wait) for this long, then the run
# stops with the store and the key named.
STORE_RETRY_SECONDS = 120.0
QUIET_LOGGERS = ("aiobotocore", "botocore", "s3fs", "fsspec")  # INFO lines of the store's client

# Choices the CLI offers, here so that parsing a command line imports nothing heavy.
UP_AXES = ("y", "z")  # a world's up axis (raycollect/camera.py)
MASKS_LINKS = "links"  # masks="links": part segmentation of URDF robots
MASKS_GEOMS = "geoms"  # masks="geoms": one id per geom of an MJCF world (its parts)
MASKS_CHOICES = (True, False, MASKS_LINKS, MASKS_GEOMS)
EXPORT_FORMATS = ("nerfstudio", "coco", "bop")  # raycollect/output/export.py
