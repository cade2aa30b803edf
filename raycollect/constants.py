"""Every default timeout and limit of raycollect, in one place.

Times are seconds, sizes are pixels or counts. Each module imports what it needs from here,
so a number is tuned once and the reason for it is written once.
"""

# --- queue -------------------------------------------------------------------------------
DEFAULT_QUEUE_NAME = "raycollect"
RAY_NAMESPACE = "raycollect"
DEFAULT_LEASE_TTL = 30.0
DEFAULT_MAX_ATTEMPTS = 3
# The actor reaps expired leases on every call and on this period, so expiry needs no caller.
REAPER_PERIOD = 0.5
# A submit batch is one journal transaction; bigger submits are cut into batches of this.
# The driver validates and submits a run's jobs in chunks of this size while it renders,
# the first one small so that rendering starts at once.
SUBMIT_CHUNK = 10_000
FIRST_SUBMIT_CHUNK = 500
# Leases handed out per call at most: keeps one call's reply small.
MAX_LEASE_BATCH = 1_000
JOB_ID_HEX_CHARS = 20
MAX_KEY_LENGTH = 128

# A Ray cluster's GCS port that does not accept a TCP connection within this long is dead.
CLUSTER_PROBE_TIMEOUT = 5.0

# --- camera and images -------------------------------------------------------------------
# Views of 8x8 pixels and less are the revision marker's, which the page renders no extra
# passes for (raycollect/render/capture.js): job images are larger.
MIN_IMAGE_SIDE = 16
MAX_IMAGE_SIDE = 4096
DEFAULT_NEAR = 0.05
DEFAULT_FAR = 100.0
# The revision marker sits beyond this distance, so no job's camera can ever see it.
MAX_FAR = 10_000.0
MARKER_DISTANCE = 1e6
# Matrices whose rotation part has a determinant this far from +-1 are rejected as singular
# or scaled: the pinhole intrinsics we report would not describe them.
MATRIX_DET_TOLERANCE = 1e-3
# Instance masks are written as 16-bit PNGs: ids 1..65535, 0 is "no element".
MAX_INSTANCES = 65_535
# zlib level of the default PNGs (raycollect/output/files.py): the fastest. image_format="png-small"
# writes PIL's PNG at PIL's default level instead.
PNG_ZLIB_LEVEL = 1
PNG_SMALL_LEVEL = 6
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
# Scene digests (what a job's scene is, for batching) a worker remembers, by params.
SCENE_DIGEST_CACHE = 4096
# Scenes (element lists) a worker keeps from batching until their jobs render, by params: a
# lease waits at most views_per_update x (1 + PREFETCH_BATCHES) leases in a worker's buffer.
BUILT_SCENE_CACHE = 64
# Leases a worker keeps in hand beyond the batch it renders, hiding the actor round trip.
PREFETCH_BATCHES = 1
GRAB_TTL = 10.0
# The revision marker is polled until it shows the new revision; give up after this long.
SETTLE_TIMEOUT = 10.0
MARKER_VIEW_SIZE = 8
SESSION_WAIT_TIMEOUT = 60.0
# First marker polls use a short ttl: a view mounted by a new scene answers only after the
# browser has painted once, and an unanswered grab costs its whole ttl.
SETTLE_GRAB_TTL = 0.25
SETTLE_GRAB_TTL_MAX = 2.0  # a marker grab's ttl doubles up to this while the view mounts
# After a grab's deadline, this long for an answer that is already in the socket (the
# deadline passed while the worker process was stopped): raycollect/render/server.py.
RPC_LATE_GRACE = 0.2
# An idle worker (queue empty for now) polls with backoff between these.
IDLE_POLL_MIN = 0.02
IDLE_POLL_MAX = 0.5
# The worker refreshes its registry entry (frames rendered, for browser recycling) this often.
REGISTRY_REFRESH_PERIOD = 1.0
HEARTBEAT_FRACTION = 1 / 3  # extend leases after this fraction of the TTL
WORKER_START_TIMEOUT = 60.0
WORKER_START_POLL = 0.5  # a start is awaited in steps of this, to notice a closing pool
WORKER_START_ATTEMPTS = 5
WORKER_START_BACKOFF = 1.0
# Batches a worker may have yielded that the driver has not taken yet (Ray generator
# backpressure): with the driver's bounded backlog, a slow caller pauses the workers.
WORKER_BACKPRESSURE = 2
# Frames the driver holds that the caller has not consumed yet, over all workers. When it is
# full the pool stops taking frames, so backpressure reaches the workers and driver memory
# stays flat however slow the caller's loop.
DRIVER_BACKLOG = 64
# A replacement worker that could not be placed (no free CPU slot after a node loss) is tried
# again in the background this often; the run goes on with the workers it has.
WORKER_REPLACE_RETRY = 10.0
# With no render worker left, replacements are tried this long before the run fails (a node
# may come back, or an autoscaler add one); the run never waits forever on none.
NO_WORKER_TIMEOUT = 120.0

# --- assets ------------------------------------------------------------------------------
# Folders up to this size are shipped to every node through the object store; larger ones
# must exist at the same path on every node.
ASSETS_SHIP_LIMIT = 256 * 2**20
# The browser may keep asset files this long without asking again: a model used by many
# jobs is fetched once per browser.
ASSETS_MAX_AGE = 24 * 3600
# A scene's models and textures must have loaded within this long, or its job fails.
MODEL_LOAD_TIMEOUT = 30.0
MODEL_POLL_PERIOD = 0.02

# --- browsers ----------------------------------------------------------------------------
CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM_ENV = "RAYCOLLECT_CHROMIUM"
BROWSER_RECYCLE_JOBS = 5_000
BROWSER_MAX_CRASHES = 5
BROWSER_CRASH_WINDOW = 60.0
BROWSER_POLL_PERIOD = 0.5
BROWSER_STOP_GRACE = 3.0
# A worker missing from the registry keeps its browser this long: a restarted queue forgets
# its registry until the workers' next refresh, and that must not cost them their pages.
BROWSER_ABSENT_GRACE = 15.0
# `raycollect browsers` lets go of a queue it could not reach this many polls in a row (the
# run ended) and waits for the next one.
BROWSER_QUEUE_GONE_POLLS = 10
# `raycollect browsers` checks that its node's raylet still answers this often, and exits
# (its browsers with it) after this many failed checks in a row: `ray stop` does not stop it
# (it is a driver, not one of Ray's processes), and a driver whose node is gone would otherwise
# live on for Ray's 60 s GCS reconnect timeout, or wait for a queue forever.
NODE_CHECK_PERIOD = 1.0
NODE_GONE_CHECKS = 3
# ...giving its browsers this long to stop and remove their profiles (they die with it anyway).
NODE_GONE_STOP_GRACE = 10.0
# Before a run joins a cluster (raycollect/preflight.py): a node's probe task must answer
# within this long (a worker process starting on a busy node), and with --browsers external
# every node's `raycollect browsers` must have connected within this long (the launcher starts
# them in the background, seconds after Ray).
PREFLIGHT_PROBE_TIMEOUT = 60.0
PREFLIGHT_BROWSERS_WAIT = 60.0
PREFLIGHT_POLL = 0.5

# --- driver and output -------------------------------------------------------------------
DEFAULT_WORKERS = 2
DEFAULT_OUT = "renders"
DEMO_VIEWS = 64
DEMO_SIZE = (320, 240)
CONTACT_SHEET_MAX_FRAMES = 64
CONTACT_SHEET_THUMB_WIDTH = 160
CONTACT_SHEET_GAP = 4
CONTACT_SHEET_TITLE_HEIGHT = 18
# The driver reads the queue's stats this often while no frames arrive (recording frames
# reads them in the same call, so a run whose jobs all render never polls). Only a run whose
# last jobs fail, and the failure count on the progress bar, wait for a poll. Each read costs
# the driver 1.5-2 ms of CPU: at 0.5 s, the gaps between a 2-worker run's batches at 640x480
# held 1-2 reads a second, about 0.15 ms per frame.
STATS_POLL_PERIOD = 2.0
# How long the driver waits for the next frame before it looks at the rest (deaths, browsers).
INBOX_WAIT = 0.5
FEEDER_STOP_GRACE = 30.0  # a run's end waits this long for the job feeder's last chunk
DRAIN_STOP_GRACE = 5.0  # and this long for each worker's drain thread after its worker ends
# The driver asks its browser hosts for crashes and errors this often, and once at the end:
# each read is a call to every host, and only the summary and a run whose browsers all gave
# up need it.
BROWSER_STATUS_PERIOD = 5.0
# Frames the driver records per queue call (one complete_and_count for all of them).
RECORD_BATCH = 64
WORKER_REPLACE_LIMIT = 20

# One writer per output (raycollect/output/lock.py): the holder touches its lock this often, and a
# lock untouched this long is stale (its run died, on this host or another).
LOCK_HEARTBEAT = 5.0
LOCK_STALE = 60.0
LOCK_ATTEMPTS = 5  # takeovers raced and lost before giving up
# A store output's lock is written, then read back this much later: of two runs racing for
# it, the one whose token is not there is refused (an object store has no create-if-absent).
LOCK_SETTLE = 1.0
STATE_DIR = ".raycollect"  # an output's queue journal and lock
JOURNAL_NAME = "queue.sqlite"  # the queue's journal, in STATE_DIR (or a store output's cache)

# --- object store outputs (raycollect/output/store.py) and shards (raycollect/output/shards.py) -----------
# A store that fails is retried with backoff (first, longest wait) for this long, then the run
# stops with the store and the key named.
STORE_RETRY_SECONDS = 120.0
STORE_RETRY_FIRST = 0.5
STORE_RETRY_MAX = 8.0
SHARD_INDEX_CACHE = 64  # shard indexes a reader keeps
QUIET_LOGGERS = ("aiobotocore", "botocore", "s3fs", "fsspec")  # INFO lines of the store's client
# A store output's frame objects carry this many characters of their attempt's lease token.
ATTEMPT_TAG = 12
# A store output's manifest is written in parts: one every this many seconds or lines.
STORE_PART_SECONDS = 5.0
STORE_PART_LINES = 10_000
# A worker with frames in an open shard and nothing to render for this long closes it.
SHARD_IDLE_FLUSH = 1.0

# Choices the CLI offers, here so that parsing a command line imports nothing heavy.
UP_AXES = ("y", "z")  # a world's up axis (raycollect/camera.py)
MASKS_LINKS = "links"  # masks="links": part segmentation of URDF robots
EXPORT_FORMATS = ("nerfstudio", "coco", "bop")  # raycollect/output/export.py

# --- waits of the driver and its helpers on Ray calls (seconds) ----------------------------
INBOX_PUT_WAIT = 0.5  # a drain thread's wait on the full inbox before it checks for closing
HOST_STATUS_TIMEOUT = 30.0  # a browser host's status
WORKER_STATUS_TIMEOUT = 5.0  # a worker's counters at the end of a run
SESSION_POLL = 1.0  # a worker waiting for its browser looks again this often
CHROMIUM_VERSION_TIMEOUT = 30.0  # `chromium --version`
BROWSER_THREAD_JOIN = 30.0  # a browser host's watcher thread, when it stops
SQLITE_PARAMS_CHUNK = 500  # ids bound in one SQLite query (its limit on bound parameters)
POOL_CLOSE_GRACE = 10.0  # seconds workers and browser hosts get to stop at the end of a run
