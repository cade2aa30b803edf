"""The `raycollect` command: parses arguments and hands them to the library, nothing more."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path

from . import constants as C

DEFAULT_OUT = "renders"
DEMO_VIEWS = 64
DEMO_SIZE = (320, 240)

log = logging.getLogger("raycollect")


class _Parser(argparse.ArgumentParser):
    """Argument errors as one line and exit status 2, not a usage block."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def _positive(kind=int, name: str = "value", most=None):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a number, got {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{name} must be > 0, got {text}")
        if most is not None and value > most:
            raise argparse.ArgumentTypeError(f"{name} must be at most {most}, got {text}")
        return value
    return parse


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size is WIDTHxHEIGHT, e.g. 320x240, got {text!r}") from None
    for v in (w, h):
        if not C.MIN_IMAGE_SIDE <= v <= C.MAX_IMAGE_SIDE:
            raise argparse.ArgumentTypeError(f"each side of --size must be within "
                                             f"{C.MIN_IMAGE_SIDE}..{C.MAX_IMAGE_SIDE}, got {text}")
    return w, h


def _workers(text: str) -> int | str:
    return text if text == "auto" else _positive(int, "--workers (or 'auto')")(text)


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--views", type=_positive(int, "--views"), default=DEMO_VIEWS,
                   help="views in the demo orbit (ignored with --jobs) [%(default)s]")
    p.add_argument("--size", type=_size, default=DEMO_SIZE, metavar="WxH",
                   help="image size of the demo orbit [320x240]")
    p.add_argument("--jobs", metavar="FILE.jsonl", help="render these jobs, one JSON dict per line")
    p.add_argument("--scene", metavar="module:function", help="scene function [built-in demo]")
    p.add_argument("--workers", type=_workers, default=C.DEFAULT_WORKERS,
                   help="render workers, or 'auto' for one per CPU [%(default)s]")
    p.add_argument("--out", default=DEFAULT_OUT,
                   help="output directory, or an object store URL (s3://bucket/prefix) that "
                        "the workers write to [%(default)s]")
    p.add_argument("--endpoint-url", metavar="URL",
                   help="an S3-compatible server for an s3:// --out [$AWS_ENDPOINT_URL]")
    p.add_argument("--shard-size", type=_positive(int, "--shard-size"), default=0, metavar="N",
                   help="pack frames N to a WebDataset tar shard (shards/) instead of one "
                        "file per pass")
    p.add_argument("--address", default=None,
                   help="Ray cluster address ('auto' joins a running one, 'local' starts a "
                        "new local Ray) [a live recorded cluster, else a local Ray]")
    p.add_argument("--browsers", choices=("managed", "external"), default="managed",
                   help="start headless Chromium for each worker, or wait for `raycollect "
                        "browsers` [%(default)s]")
    p.add_argument("--max-attempts", type=_positive(int, "--max-attempts"),
                   default=C.DEFAULT_MAX_ATTEMPTS)
    p.add_argument("--lease-ttl", type=_positive(float, "--lease-ttl"), default=C.DEFAULT_LEASE_TTL)
    p.add_argument("--views-per-update",
                   type=_positive(int, "--views-per-update", C.MAX_VIEWS_PER_UPDATE),
                   default=C.VIEWS_PER_UPDATE,
                   help=f"camera views sent in one scene update, at most "
                        f"{C.MAX_VIEWS_PER_UPDATE} [%(default)s]")
    p.add_argument("--depth", action="store_true",
                   help="also write metric z-depth: frames/<job_id>.depth.npy (float32 metres)")
    p.add_argument("--masks", nargs="?", const=True, default=False, metavar="links|geoms",
                   help="also write instance masks (frames/<job_id>.mask.png, 16-bit ids) and "
                        "labels (objects in the manifest); --masks links: one id per URDF "
                        "link; --masks geoms: one id per geom of an MJCF world")
    p.add_argument("--classes", metavar="FILE.json",
                   help="each element key's class: a JSON object {key: class name} [its key]")
    p.add_argument("--semantic", action="store_true",
                   help="also write class-id masks: frames/<job_id>.semantic.png (needs --masks)")
    p.add_argument("--amodal", action="store_true",
                   help="also write each object's whole silhouette, occluded parts included: "
                        "frames/<job_id>.amodal.npz, px_all, bbox_all, visib_fract (needs --masks)")
    p.add_argument("--normals", action="store_true",
                   help="also write unit normals in the camera frame: frames/<job_id>.normals.npy")
    p.add_argument("--coords", action="store_true",
                   help="also write object coordinates: frames/<job_id>.coords.npy")
    p.add_argument("--image-format", choices=list(C.IMAGE_FORMATS), default="png",
                   help="how RGB frames are written: png (fastest encode), png-small, webp "
                        "(lossless) or npy [%(default)s]")
    p.add_argument("--up", choices=C.UP_AXES, default=None,
                   help="the world's up axis: z for ROS, pybullet and MuJoCo worlds [y, or "
                        "what the scene says: an MJCF world is z]")
    p.add_argument("--assets", metavar="DIR",
                   help="folder of meshes and textures every worker serves at /workspace/")
    p.add_argument("--queue", default=C.DEFAULT_QUEUE_NAME, help="queue name [%(default)s]")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _endpoint(args: argparse.Namespace) -> dict | None:
    """fsspec options naming --endpoint-url, when given."""
    return {"endpoint_url": args.endpoint_url} if getattr(args, "endpoint_url", None) else None


def _fail(message: str) -> int:
    print(f"raycollect: error: {message}", file=sys.stderr)
    return 2


def _check_cluster(args: argparse.Namespace) -> None:
    """Joining a running cluster: every node must be able to render before workers are
    placed there (raycollect/preflight.py). A local Ray started for this run is this machine,
    already checked by the driver."""
    from . import cluster
    from .preflight import check_nodes

    target = cluster.resolve(args.address)
    if target is None or target == "local" or "://" in target:
        return
    cluster.init(args.address, include_dashboard=False, configure_logging=False,
                 log_to_driver=True)
    check_nodes(args.browsers)


def cmd_run(args: argparse.Namespace) -> int:
    from .driver import render
    from .errors import JournalDamaged, OutputBusy, RaycollectError
    from .jobs import read_jsonl
    from .scene import load_scene, orbit
    from .output.store import is_url, location

    # Everything a command line can get wrong is checked here, before Ray starts.
    if args.masks not in C.MASKS_CHOICES:
        return _fail(f"--masks takes no value, {C.MASKS_LINKS!r} or {C.MASKS_GEOMS!r}, "
                     f"got {args.masks!r}")
    for flag in ("amodal", "semantic"):
        if getattr(args, flag) and not args.masks:
            return _fail(f"--{flag} needs --masks (it is made from the instance masks)")
    classes = None
    if args.classes:
        try:
            classes = json.loads(Path(args.classes).read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            return _fail(f"--classes {args.classes}: {e}")
        if not isinstance(classes, dict) or not all(
                isinstance(k, str) and isinstance(v, str) and v for k, v in classes.items()):
            return _fail(f"--classes {args.classes}: not a JSON object of element key -> "
                         f"class name")
    if args.jobs and not Path(args.jobs).is_file():
        return _fail(f"--jobs {args.jobs}: no such file")
    if args.assets and not Path(args.assets).is_dir():
        return _fail(f"--assets {args.assets}: no such directory")
    if args.out and is_url(args.out):
        # The URL, the bucket and the credentials, checked before Ray starts.
        try:
            location(args.out, _endpoint(args)).check()
        except RaycollectError as e:
            return _fail(str(e))
    elif args.out and Path(args.out).exists() and not Path(args.out).is_dir():
        return _fail(f"--out {args.out}: is a file, not a directory")
    try:
        load_scene(args.scene)
    except ValueError as e:
        return _fail(str(e))
    try:
        _check_cluster(args)
    except RaycollectError as e:
        return _fail(str(e))
    jobs = read_jsonl(args.jobs) if args.jobs else orbit(args.views, *args.size)
    run = render(jobs, scene=args.scene, workers=args.workers, out=args.out,
                 address=args.address, browsers=args.browsers, queue_name=args.queue,
                 lease_ttl=args.lease_ttl, max_attempts=args.max_attempts,
                 views_per_update=args.views_per_update, depth=args.depth, masks=args.masks,
                 classes=classes, semantic=args.semantic, amodal=args.amodal,
                 normals=args.normals, coords=args.coords,
                 **({"up": args.up} if args.up else {}), assets=args.assets,
                 image_format=args.image_format,
                 endpoint_url=args.endpoint_url, shard_size=args.shard_size,
                 progress=not args.no_progress)
    try:
        for _ in run:
            pass
    except (OutputBusy, JournalDamaged) as e:  # refused before anything started: one line
        print(f"raycollect: {e}", file=sys.stderr)
        return 2
    except RaycollectError as e:
        log.error("raycollect: %s", e)
        print(f"raycollect: run failed: {e}", file=sys.stderr)
        return 2
    print(f"raycollect: {run.summary.line()}")
    if run.summary.get("out"):
        print(f"raycollect: output in {run.summary['out']} (manifest, "
              f"{'shards/' if args.shard_size else 'frames/'}, contact_sheet.png, failures.jsonl)")
    return 1 if run.summary["failed"] else 0


def cmd_status(args: argparse.Namespace) -> int:
    from .errors import QueueUnavailable, RaycollectError
    from .queue import JobQueue

    if args.out:
        from .output.manifest import output_status

        try:
            print(json.dumps(output_status(args.out, _endpoint(args))))
        except RaycollectError as e:
            return _fail(str(e))
        return 0
    from .cluster import init

    try:
        init(args.address, include_dashboard=False, configure_logging=False, log_to_driver=False)
        q = JobQueue.connect(args.queue)
        stats = q.stats()
        from .metrics import per_node, per_worker

        stats["by_worker"] = per_worker(q.workers())
        stats["by_node"] = per_node(stats["by_worker"])
    except QueueUnavailable as e:
        print(f"raycollect: {e}", file=sys.stderr)
        return 1
    except RaycollectError as e:
        return _fail(str(e))
    print(json.dumps(stats, indent=1))
    return 0


def cmd_browsers(args: argparse.Namespace) -> int:
    import ray

    from . import node_watch
    from .browser import BrowserManager, find_chromium
    from .cluster import init
    from .errors import QueueUnavailable, RaycollectError
    from .queue import JobQueue

    try:
        binary = args.chromium or find_chromium()
        init(args.address, include_dashboard=False, configure_logging=False, log_to_driver=False)
    except RaycollectError as e:
        return _fail(str(e))
    node_id = ray.get_runtime_context().get_node_id()
    stopping = False

    def _stop(signum, frame):
        nonlocal stopping
        stopping = True
        raise KeyboardInterrupt

    # SIGINT too: a process started in the background (`&`, nohup, a launcher's start
    # command) inherits SIGINT ignored, and Python keeps it so, so Ctrl-C or `kill -INT`
    # would otherwise be lost.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _stop)
    log.info("raycollect browsers: node %s, queue %r, %s", node_id, args.queue, binary)
    manager = None

    def _node_gone():
        # The main thread may be inside a Ray call that never returns now: stop the browsers
        # from here (bounded), then leave at once.
        print("raycollect browsers: this node's Ray is gone (ray stop?); stopping its browsers",
              file=sys.stderr, flush=True)
        if manager is not None:
            closer = threading.Thread(target=manager.stop, daemon=True)
            closer.start()
            closer.join(node_watch.NODE_GONE_STOP_GRACE)
        os._exit(0)

    node_watch.watch(node_watch.raylet_socket(), _node_gone)
    try:
        while not stopping:
            try:
                q = JobQueue.connect(args.queue, timeout=3600 * 24 * 365)
            except QueueUnavailable:
                continue
            manager = BrowserManager(q, node_id=node_id, binary=binary,
                                     recycle_frames=args.recycle)
            manager.run_forever()  # returns when the queue has gone (the run ended)
            if manager.fatal:
                print(f"raycollect browsers: {manager.fatal}", file=sys.stderr)
                return 2
            log.info("queue %r gone; waiting for the next run", args.queue)
            time.sleep(1.0)
    except KeyboardInterrupt:
        pass
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .errors import RaycollectError
    from .output.export import export

    try:
        path = export(args.out, args.format, categories=args.categories,
                      storage_options=_endpoint(args), split=args.split, assets=args.assets,
                      scene_size=args.scene_size)
    except RaycollectError as e:
        print(f"raycollect: {e}", file=sys.stderr)
        return 2
    print(f"raycollect: wrote {path}")
    return 0


def cmd_repair(args: argparse.Namespace) -> int:
    from .errors import RaycollectError
    from .output.repair import repair

    try:
        done = repair(args.out)
    except RaycollectError as e:
        print(f"raycollect: {e}", file=sys.stderr)
        return 2
    print(f"raycollect: rebuilt {done['journal']} from the manifest: {done['done']} jobs done, "
          f"{done['instances']} instance ids" + (f"; the damaged journal is {done['moved']}"
                                                 if done["moved"] else ""))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="raycollect", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    run = sub.add_parser("run", help="render jobs (default: a demo orbit) into --out")
    add_run_arguments(run)
    status = sub.add_parser("status", help="counts of a running queue, or of an output dir")
    status.add_argument("--queue", default=C.DEFAULT_QUEUE_NAME)
    status.add_argument("--address", default="auto")
    status.add_argument("--out", help="report on this output (a directory or a store URL) instead")
    status.add_argument("--endpoint-url", metavar="URL", help="S3-compatible server of an s3:// "
                                                            "--out [$AWS_ENDPOINT_URL]")
    browsers = sub.add_parser("browsers", help="keep a headless browser on each worker of this node")
    browsers.add_argument("--address", default="auto")
    browsers.add_argument("--queue", default=C.DEFAULT_QUEUE_NAME)
    browsers.add_argument("--chromium", help=f"browser binary [${C.CHROMIUM_ENV} or PATH]")
    browsers.add_argument("--recycle", type=int, default=C.BROWSER_RECYCLE_JOBS,
                          help="restart a browser after this many frames [%(default)s]")
    export = sub.add_parser("export", help="write a finished output in another tool's format")
    export.add_argument("out", help="the output of a run (a directory or a store URL)")
    export.add_argument("--format", required=True, choices=C.EXPORT_FORMATS,
                        help="nerfstudio: OUT/transforms.json (also read by instant-ngp); coco: "
                             "OUT/coco.json (instances, RLE masks); bop: OUT/bop/ (a BOP dataset: "
                             "models, SPLIT/000000/); coco needs a run with --masks, bop with "
                             "--depth --masks --amodal")
    export.add_argument("--endpoint-url", metavar="URL", help="S3-compatible server of an "
                                                            "s3:// OUT [$AWS_ENDPOINT_URL]")
    export.add_argument("--categories", help="coco: a JSON file of {element key: category name} "
                                             "[each key its own category]")
    export.add_argument("--split", default="train", help="bop: the split folder, OUT/bop/SPLIT/ "
                                                         "[%(default)s]")
    export.add_argument("--assets", metavar="DIR", help="bop: the assets folder of the scenes' "
                                                        "model files [the one OUT/dataset.json names]")
    export.add_argument("--scene-size", type=int, metavar="N", help="bop: images a scene folder, "
                                                                    "SPLIT/000000/, 000001/, ... [1000]")
    repair = sub.add_parser("repair", help="rebuild an output's damaged queue journal from its "
                                           "manifest")
    repair.add_argument("out", help="the output directory of a run")
    argv = list(sys.argv[1:] if argv is None else argv)
    if not any(a in sub.choices or a in ("-h", "--help") for a in argv):
        argv = ["run", *argv]  # plain `raycollect [options]` is `raycollect run`
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for name in C.QUIET_LOGGERS:  # "found credentials in ...": not ours to report each run
        logging.getLogger(name).setLevel(logging.WARNING)
    return {"run": cmd_run, "status": cmd_status, "browsers": cmd_browsers,
            "export": cmd_export, "repair": cmd_repair}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
