"""``mvsam weights fetch|list``: verified checkpoints in the user cache."""

from __future__ import annotations

from mvsam.sam.weights import REGISTRY, fetch_checkpoint, weights_dir


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("weights", help="download and verify SAM checkpoints")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    fetch = actions.add_parser("fetch", help="download a checkpoint into the user cache, checking its sha256")
    fetch.add_argument("--model", default="mobile_sam", choices=sorted(REGISTRY), help="default: mobile_sam")
    fetch.add_argument("--timeout", type=float, default=60.0, help="network timeout in seconds")
    fetch.set_defaults(run=run_fetch)
    listing = actions.add_parser("list", help="show known checkpoints and whether they are cached")
    listing.set_defaults(run=run_list)


def run_fetch(args) -> int:
    path = fetch_checkpoint(args.model, timeout=args.timeout)
    print(f"{args.model}: {path} (sha256 verified)")
    return 0


def run_list(args) -> int:
    print(f"cache: {weights_dir()}")
    for name, info in REGISTRY.items():
        cached = (weights_dir() / info.filename).is_file()
        print(f"{name:11s} {info.filename:22s} {info.size / 1e6:8.1f} MB  {'cached' if cached else '-'}")
    return 0
