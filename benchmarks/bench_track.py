"""Tracking benchmarks: DAVIS 2016 J&F and fps, peak memory on a 300-frame video, the DTU wide-baseline sweep.

    python benchmarks/bench_track.py --data ../shared/data [--parts davis rss dtu] [--json out.json]

- davis: the semi-supervised protocol on every sequence (see ``mvsam eval davis``).
- rss: a 300-frame 480p mp4 made from DAVIS car-turn played forwards and backwards (a continuous clip),
  tracked from the first frame's mask; reports peak RSS and the RSS after 50 and after all frames.
- dtu: DTU scan24's 49 views ordered into a camera sweep (nearest-neighbour chain over camera centres from
  the view farthest from the rest), tracked from the first view's ground-truth mask as if they were a video;
  IoU per view, 3AM's Pos IoU and Suc IoU. The object is carried by the 3D voxel memory over the
  plane-sweep depth of ``scene.geometry()`` (cached after the first run); ``--no-geometry``: flow only.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

import av
import numpy as np
from tqdm import tqdm

from mvsam.evaluate.davis import evaluate_davis
from mvsam.evaluate.metrics import iou, pos_iou, suc_iou
from mvsam.io.images import image_size, list_images, read_mask_png, read_rgb
from mvsam.io.video import FolderFrames, open_frames
from mvsam.sam import load_predictor
from mvsam.scene import Scene
from mvsam.segment.track import Tracker, TrackerConfig, TrackPrompt

RSS_FRAMES = 300


def rss_mb() -> float:
    """Resident set size now, MiB (Linux /proc)."""
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_davis(tracker: Tracker, data: Path) -> dict:
    cpu = time.process_time()
    report = evaluate_davis(tracker, data / "davis2016_train8")
    print(report.table())
    frames = sum(s.frames + 1 for s in report.sequences)
    return {**asdict(report), "cpu_seconds_per_frame": (time.process_time() - cpu) / frames}


def make_video(data: Path, path: Path) -> np.ndarray:
    """Write the 300-frame ping-pong car-turn mp4; returns the first frame's ground-truth mask."""
    folder = data / "davis2016_train8/JPEGImages/480p/car-turn"
    frames = list_images(folder)
    order = []
    while len(order) < RSS_FRAMES:
        order += (
            list(range(len(frames))) if len(order) // len(frames) % 2 == 0 else list(range(len(frames)))[::-1]
        )
    width, height = image_size(frames[0])
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index in order[:RSS_FRAMES]:
            frame = av.VideoFrame.from_ndarray(read_rgb(frames[index]), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return read_mask_png(data / "davis2016_train8/Annotations/480p/car-turn/00000.png")


def bench_rss(tracker: Tracker, data: Path) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "car_pingpong.mp4"
        mask = make_video(data, path)
        frames = open_frames(path)
        rss_start = rss_mb()
        start, samples, present = time.perf_counter(), {}, 0
        for count, result in enumerate(
            tqdm(tracker.track(frames, TrackPrompt(0, mask=mask)), total=len(frames))
        ):
            present += result.present
            if count + 1 in (50, len(frames)):
                samples[count + 1] = rss_mb()
        seconds = time.perf_counter() - start
    result = {
        "frames": len(frames),
        "present": present,
        "fps": len(frames) / seconds,
        "rss_start_mb": rss_start,
        "rss_after_50_mb": samples[50],
        "rss_after_all_mb": samples[len(frames)],
        "peak_rss_mb": peak_rss_mb(),
    }
    print(json.dumps(result, indent=2))
    return result


def dtu_sweep(scene: Scene) -> list[int]:
    """View indices in sweep order: a nearest-neighbour chain over camera centres, from one end."""
    centres = np.array([view.camera.center for view in scene.views])
    count = len(centres)
    distances = np.linalg.norm(centres[:, None] - centres[None], axis=2)
    order = [int(np.argmax(distances.sum(axis=1)))]
    while len(order) < count:
        remaining = [i for i in range(count) if i not in order]
        order.append(min(remaining, key=lambda i: distances[order[-1], i]))
    return order


def bench_dtu(tracker: Tracker, data: Path, use_geometry: bool = True) -> dict:
    scan = data / "dtu_scan24"
    scene = Scene.load(scan)
    if use_geometry:
        scene = scene.geometry()  # plane-sweep depth, cached after the first run
    order = dtu_sweep(scene)
    sweep = replace(scene, views=[scene.views[i] for i in order])
    width, height = sweep.views[0].width, sweep.views[0].height
    masks = [read_mask_png(scan / "mask" / f"{int(view.stem):03d}.png") for view in sweep.views]
    frames = FolderFrames([view.image_path for view in sweep.views], (height, width))
    predictions = [None] * len(order)
    sources = [""] * len(order)
    start = time.perf_counter()
    results = tracker.track(frames, TrackPrompt(0, mask=masks[0]), scene=sweep if use_geometry else None)
    for result in tqdm(results, total=len(order), desc="dtu sweep"):
        predictions[result.index] = result.mask
        sources[result.index] = result.source
    seconds = time.perf_counter() - start
    scores = [iou(p, g) for p, g in zip(predictions[1:], masks[1:], strict=True)]
    result = {
        "geometry": use_geometry,
        "order": [view.stem for view in sweep.views],
        "iou_per_view": scores,
        "source_per_view": sources[1:],
        "mean_iou": float(np.mean(scores)),
        "pos_iou": pos_iou(predictions[1:], masks[1:]),
        "suc_iou": suc_iou(predictions[1:], masks[1:]),
        "seconds": seconds,
    }
    print(
        f"DTU sweep ({'geometry' if use_geometry else 'flow only'}): mean IoU {result['mean_iou']:.3f}, "
        f"Pos IoU {result['pos_iou']:.3f}, Suc IoU {result['suc_iou']:.3f}, min IoU {min(scores):.3f}, "
        f"{seconds:.0f} s"
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data")
    parser.add_argument("--checkpoint", type=Path, help="MobileSAM checkpoint")
    parser.add_argument(
        "--parts", nargs="+", choices=["davis", "rss", "dtu"], default=["davis", "rss", "dtu"]
    )
    parser.add_argument("--tiles", type=int, default=TrackerConfig.tiles)
    parser.add_argument("--sam-every", type=int, default=TrackerConfig.sam_every)
    parser.add_argument("--no-geometry", action="store_true", help="DTU sweep by flow only")
    parser.add_argument("--json", type=Path, default=Path("bench_track.json"))
    args = parser.parse_args()
    predictor = load_predictor("mobile_sam", checkpoint=args.checkpoint)
    tracker = Tracker(predictor, TrackerConfig(tiles=args.tiles, sam_every=args.sam_every))
    results = {"config": asdict(tracker.config)}
    for part, bench in [("davis", bench_davis), ("rss", bench_rss)]:
        if part in args.parts:
            results[part] = bench(tracker, args.data)
    if "dtu" in args.parts:
        results["dtu"] = bench_dtu(tracker, args.data, use_geometry=not args.no_geometry)
    args.json.write_text(json.dumps(results, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
