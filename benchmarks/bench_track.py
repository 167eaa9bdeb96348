"""Tracking benchmarks: DAVIS 2016 J&F and fps, peak memory on a 300-frame video, the DTU wide-baseline sweep.

    python benchmarks/bench_track.py --data ../shared/data [--parts davis rss dtu objects] [--json out.json]

- davis: the semi-supervised protocol on every sequence of both folds (see ``mvsam eval davis``).
- rss: a 300-frame 480p mp4 made from DAVIS car-turn played forwards and backwards (a continuous clip),
  tracked from the first frame's mask; reports peak RSS and the RSS after 50 and after all frames.
- dtu: DTU scan24's 49 views ordered into a camera sweep (nearest-neighbour chain over camera centres from
  the view farthest from the rest), tracked from the first view's ground-truth mask as if they were a video;
  IoU per view, 3AM's Pos IoU and Suc IoU. The object is carried by the 3D voxel memory over the
  plane-sweep depth of ``scene.geometry()`` (cached after the first run); ``--no-geometry``: flow only.
- cv: the cross-validation that chooses ``TrackerConfig.TUNED``: each candidate of ``CV_GRID`` (one setting
  moved from the default at a time) is scored on each fold at every ``--cv-step``-th frame (cheaper); the
  best on one fold is then scored on the other fold at every ``--cv-held-step``-th frame (held out), both
  ways.
- objects: the bundled demo scene's 8 views as a camera path, tracked from view 0's instance map with object 1
  alone and then with all 4 objects; CPU seconds of each run and their ratio (what the extra objects cost),
  and IoU per object.
- speed: one object on DAVIS car-turn's first 40 frames at 480p from cold embeddings, the torch decoder and
  ``--decoder`` (default ``TRACK_DECODER``) alternated twice in one process: frames/s, CPU s/frame, and
  whether their masks are identical.
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
from mvsam.export.instances import read_id_png
from mvsam.io.images import image_size, list_images, read_mask_png, read_rgb
from mvsam.io.video import FolderFrames, open_frames
from mvsam.sam import load_predictor
from mvsam.scene import Scene
from mvsam.segment.track import TRACK_DECODER, Tracker, TrackerConfig, TrackPrompt

RSS_FRAMES = 300


def rss_mb() -> float:
    """Resident set size now, MiB (Linux /proc)."""
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


FOLDS = ("davis2016_train8", "davis2016_train_more")  # fold A, fold B: tune on one, report on the other


def bench_davis(tracker: Tracker, data: Path) -> dict:
    """Both folds, each with its table; J&F per fold and over all 16 videos, false-present frames."""
    result = {}
    for fold in FOLDS:
        cpu = time.process_time()
        report = evaluate_davis(tracker, data / fold)
        print(fold)
        print(report.table())
        frames = sum(s.frames + 1 for s in report.sequences)
        result[fold] = {**asdict(report), "cpu_seconds_per_frame": (time.process_time() - cpu) / frames}
    return result


CV_GRID = {"min_share": (0.2, 0.3, 0.5), "same_object": (0.65, 0.7, 0.75)}  # TrackerConfig.TUNED's values


def cv_candidates(base: TrackerConfig) -> list[dict]:
    """The default, then each tuned setting moved to each of its other grid values alone."""
    assert set(CV_GRID) == set(TrackerConfig.TUNED)
    candidates = [{}]
    for name, values in CV_GRID.items():
        candidates += [{name: value} for value in values if value != getattr(base, name)]
    return candidates


def bench_cv(tracker: Tracker, data: Path, step: int, held_step: int, json_path: Path) -> dict:
    """Tune on one fold (every ``step``-th frame), report the chosen settings on the other (every
    ``held_step``-th frame; a held-out score at the tuning step is the sweep's own row, so costs nothing)."""
    base, predictor = tracker.config, tracker.predictor
    result: dict = {"step": step, "held_step": held_step, "grid": CV_GRID, "sweep": {}, "held_out": {}}
    for fold in FOLDS:
        rows = []
        for candidate in cv_candidates(base):
            report = evaluate_davis(Tracker(predictor, replace(base, **candidate)), data / fold, step=step)
            per_video = {score.name: score.jf for score in report.sequences}
            rows.append(
                {
                    "settings": candidate,
                    "jf": report.jf,
                    "false_present": report.false_present,
                    "per_video": per_video,
                }
            )
            print(
                f"tune on {fold} (every {step}th frame): {candidate or 'default'} J&F {report.jf:.3f}, "
                f"false present {report.false_present}",
                flush=True,
            )
            json_path.write_text(json.dumps(result | {"sweep": result["sweep"] | {fold: rows}}, indent=2))
        result["sweep"][fold] = rows
    for tuned, held in (FOLDS, FOLDS[::-1]):
        best = max(result["sweep"][tuned], key=lambda row: (row["jf"], -row["false_present"]))
        if held_step == step:
            (row,) = [row for row in result["sweep"][held] if row["settings"] == best["settings"]]
            result["held_out"][held] = {"tuned_on": tuned, **row}
            print(f"tuned on {tuned}: {best['settings'] or 'default'}; held out {held}: J&F {row['jf']:.3f}")
            continue
        report = evaluate_davis(
            Tracker(predictor, replace(base, **best["settings"])), data / held, step=held_step
        )
        print(f"tuned on {tuned}: {best['settings'] or 'default'}; held out {held}:")
        print(report.table(), flush=True)
        result["held_out"][held] = {"tuned_on": tuned, "settings": best["settings"], **asdict(report)}
        json_path.write_text(json.dumps(result, indent=2))
    means = [result["held_out"][fold]["jf"] for fold in FOLDS]
    result["held_out_mean_jf"] = float(np.mean(means))
    print(f"held-out J&F: fold A {means[0]:.3f}, fold B {means[1]:.3f}, mean {np.mean(means):.3f}")
    return result


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


def bench_objects(tracker: Tracker, data: Path) -> dict:
    from mvsam.demo.run import SCENE_DIR

    frames = FolderFrames([SCENE_DIR / "color" / f"{i}.jpg" for i in range(8)], (480, 640))
    truth = [read_id_png(SCENE_DIR / "instance" / f"{i}.png") for i in range(8)]
    result = {}
    for ids in ([1], [1, 2, 3, 4]):
        prompts = {k: TrackPrompt(0, mask=truth[0] == k) for k in ids}
        cpu, start = time.process_time(), time.perf_counter()
        answers = list(tracker.track_objects(frames, prompts))
        cpu, seconds = time.process_time() - cpu, time.perf_counter() - start
        ious = {
            k: float(np.mean([iou(r.objects[k].mask, truth[r.index] == k) for r in answers])) for k in ids
        }
        result[f"{len(ids)}_objects"] = {"cpu_seconds": cpu, "seconds": seconds, "mean_iou": ious}
    result["cpu_ratio_4_to_1"] = result["4_objects"]["cpu_seconds"] / result["1_objects"]["cpu_seconds"]
    print(json.dumps(result, indent=2))
    return result


SPEED_SEQUENCE, SPEED_FRAMES, SPEED_ROUNDS = "car-turn", 40, 2


def bench_speed(config: TrackerConfig, data: Path, checkpoint: Path | None, decoder: str) -> dict:
    """Frames/s and CPU s/frame for one object on car-turn's first 40 frames at 480p, embeddings cold: the
    torch decoder and ``decoder`` alternated in one process (fair on a loaded machine); masks must match."""
    root = data / FOLDS[0]
    frames = open_frames(root / "JPEGImages/480p" / SPEED_SEQUENCE)
    frames = FolderFrames(frames.paths[:SPEED_FRAMES], frames.size)
    prompt = TrackPrompt(0, mask=read_mask_png(root / "Annotations/480p" / SPEED_SEQUENCE / "00000.png"))
    arms = {
        name: Tracker(load_predictor("mobile_sam", checkpoint, cache_dir=False, decoder=name), config)
        for name in ("torch", decoder)
    }
    result: dict = {name: {"cpu_s_per_frame": [], "fps": []} for name in arms}
    masks = {}
    for _ in range(SPEED_ROUNDS):
        for name, arm in arms.items():
            cpu, start = time.process_time(), time.perf_counter()
            masks[name] = [r.mask for r in arm.track(frames, prompt)]
            cpu, seconds = time.process_time() - cpu, time.perf_counter() - start
            result[name]["cpu_s_per_frame"].append(cpu / len(frames))
            result[name]["fps"].append(len(frames) / seconds)
    first, *others = masks.values()
    result["masks_identical"] = all(
        np.array_equal(a, b) for other in others for a, b in zip(first, other, strict=True)
    )
    print(json.dumps(result, indent=2))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data")
    parser.add_argument("--checkpoint", type=Path, help="MobileSAM checkpoint")
    parser.add_argument(
        "--parts",
        nargs="+",
        choices=["davis", "rss", "dtu", "objects", "cv", "speed"],
        default=["davis", "rss", "dtu", "objects", "speed"],
    )
    parser.add_argument(
        "--decoder", default=TRACK_DECODER, help=f"mask decoder backend (default {TRACK_DECODER})"
    )
    parser.add_argument("--tiles", type=int, default=TrackerConfig.tiles)
    parser.add_argument("--sam-every", type=int, default=TrackerConfig.sam_every)
    parser.add_argument("--cv-step", type=int, default=3, help="cv: tune on every k-th frame")
    parser.add_argument("--cv-held-step", type=int, default=1, help="cv: score held out on every k-th frame")
    parser.add_argument("--no-geometry", action="store_true", help="DTU sweep by flow only")
    parser.add_argument("--json", type=Path, default=Path("bench_track.json"))
    args = parser.parse_args()
    predictor = load_predictor("mobile_sam", checkpoint=args.checkpoint, decoder=args.decoder)
    tracker = Tracker(predictor, TrackerConfig(tiles=args.tiles, sam_every=args.sam_every))
    results = {"config": asdict(tracker.config)}
    for part, bench in [("davis", bench_davis), ("rss", bench_rss), ("objects", bench_objects)]:
        if part in args.parts:
            results[part] = bench(tracker, args.data)
    if "speed" in args.parts:
        results["speed"] = bench_speed(tracker.config, args.data, args.checkpoint, args.decoder)
    if "cv" in args.parts:
        results["cv"] = bench_cv(
            tracker, args.data, args.cv_step, args.cv_held_step, args.json.with_suffix(".cv.json")
        )
    if "dtu" in args.parts:
        results["dtu"] = bench_dtu(tracker, args.data, use_geometry=not args.no_geometry)
    args.json.write_text(json.dumps(results, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
