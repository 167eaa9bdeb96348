"""DAVIS 2016 semi-supervised evaluation: the first frame's mask is given, every later frame is scored.

Layout read: ``DIR/JPEGImages/480p/<seq>/NNNNN.jpg`` and ``DIR/Annotations/480p/<seq>/NNNNN.png``.
J is region IoU, F the boundary F-measure (tolerance ceil(0.008 x diagonal)), J&F their mean; each is
averaged over a sequence's frames, then over sequences. ``false_present`` counts frames where the tracker
says the object is there but its mask does not touch the ground truth (a hijacked track). ``step`` > 1 tracks
every step-th frame only (a cheaper protocol for tuning sweeps; the reported protocol uses every frame).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from mvsam.commands.common import add_model_arguments, write_json_report
from mvsam.errors import InputError
from mvsam.evaluate.metrics import boundary_f, iou
from mvsam.io.images import list_images, read_mask_png
from mvsam.io.video import FolderFrames, open_frames
from mvsam.segment.track import TRACK_DECODER, Tracker, TrackerConfig, TrackPrompt

RESOLUTION = "480p"


@dataclass
class SequenceScore:
    """Scores and speed of one sequence."""

    name: str
    frames: int  # frames scored (all but the first)
    j: float
    f: float
    jf: float
    seconds: float  # wall time of tracking the whole sequence
    fps: float
    sam_frames: int  # frames where a SAM mask was kept (the rest carried by flow or absent)
    false_present: int  # scored frames reported present on a region with no overlap with the object


@dataclass
class DavisReport:
    sequences: list[SequenceScore]
    j: float
    f: float
    jf: float
    fps: float  # all frames tracked / all tracking seconds
    false_present: int  # summed over sequences

    def table(self) -> str:
        head = f"{'sequence':<18} {'frames':>6} {'J':>6} {'F':>6} {'J&F':>6} {'fps':>6} {'false+':>6}"
        lines = [head]
        for s in self.sequences:
            lines.append(
                f"{s.name:<18} {s.frames:>6d} {s.j:>6.3f} {s.f:>6.3f} {s.jf:>6.3f} {s.fps:>6.2f} "
                f"{s.false_present:>6d}"
            )
        lines.append(
            f"{'mean':<18} {'':>6} {self.j:>6.3f} {self.f:>6.3f} {self.jf:>6.3f} {self.fps:>6.2f} "
            f"{self.false_present:>6d}"
        )
        return "\n".join(lines)


def davis_sequences(data: Path) -> list[str]:
    """Names of the sequences that have both frames and annotations under ``data``."""
    images, annotations = data / "JPEGImages" / RESOLUTION, data / "Annotations" / RESOLUTION
    if not images.is_dir() or not annotations.is_dir():
        raise FileNotFoundError(
            f"{data} is not a DAVIS folder: expected JPEGImages/{RESOLUTION}/ and Annotations/{RESOLUTION}/"
        )
    return sorted(p.name for p in images.iterdir() if p.is_dir() and (annotations / p.name).is_dir())


def evaluate_sequence(tracker: Tracker, data: Path, name: str, step: int = 1) -> SequenceScore:
    """Track one sequence (every ``step``-th frame) from its first ground-truth mask and score every later
    frame tracked."""
    frames = open_frames(data / "JPEGImages" / RESOLUTION / name)
    frames = FolderFrames(frames.paths[::step], frames.size)
    annotations = list_images(data / "Annotations" / RESOLUTION / name)
    by_stem = {path.stem: path for path in annotations}
    missing = [stem for stem in frames.stems if stem not in by_stem]
    if missing:
        raise FileNotFoundError(f"{name}: no annotation for frames {missing[:3]}")
    prompt = TrackPrompt(frame=0, mask=read_mask_png(by_stem[frames.stems[0]]))
    js, fs, sam_frames, false_present = [], [], 0, 0
    start = time.perf_counter()
    for result in tqdm(
        tracker.track(frames, prompt), total=len(frames), desc=name, unit="frame", leave=False
    ):
        sam_frames += result.source in ("sam", "redetect")
        if result.index == 0:
            continue
        gt = read_mask_png(by_stem[frames.stems[result.index]])
        false_present += bool(result.present and result.mask.any() and not (result.mask & gt).any())
        js.append(iou(result.mask, gt))
        fs.append(boundary_f(result.mask, gt))
    seconds = time.perf_counter() - start
    j, f = sum(js) / len(js), sum(fs) / len(fs)
    fps = len(frames) / seconds
    return SequenceScore(name, len(js), j, f, (j + f) / 2, seconds, fps, sam_frames, false_present)


def evaluate_davis(
    tracker: Tracker, data: str | Path, sequences: list[str] | None = None, step: int = 1
) -> DavisReport:
    """Run the semi-supervised protocol on ``sequences`` (all found under ``data`` when None), on every
    ``step``-th frame."""
    data = Path(data)
    if isinstance(step, bool) or not isinstance(step, int) or step < 1:
        raise InputError(f"step is a whole number of frames >= 1, got {step!r}")
    available = davis_sequences(data)
    if sequences:
        unknown = sorted(set(sequences) - set(available))
        if unknown:
            raise InputError(f"unknown sequences {unknown}; {data} has {', '.join(available)}")
    names = sequences or available
    if not names:
        raise InputError(f"{data}: no sequences found")
    scores = []
    for name in names:
        scores.append(evaluate_sequence(tracker, data, name, step))
        s = scores[-1]
        tqdm.write(f"{name}: J {s.j:.3f}  F {s.f:.3f}  J&F {s.jf:.3f}  {s.fps:.2f} fps")
    j = sum(s.j for s in scores) / len(scores)
    f = sum(s.f for s in scores) / len(scores)
    total_frames = sum(s.frames + 1 for s in scores)
    fps = total_frames / sum(s.seconds for s in scores)
    return DavisReport(scores, j, f, (j + f) / 2, fps, sum(s.false_present for s in scores))


def add_eval_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "davis", help="DAVIS 2016 semi-supervised video object segmentation (J, F)"
    )
    parser.add_argument(
        "--data", required=True, type=Path, help="DAVIS folder with JPEGImages/ and Annotations/"
    )
    parser.add_argument("--sequences", nargs="+", help="sequence names (default: all)")
    parser.add_argument(
        "--json", type=Path, default=Path("davis_results.json"), help="where to write results"
    )
    add_model_arguments(parser)
    parser.add_argument(
        "--sam-every", type=int, default=TrackerConfig.sam_every, help="SAM on every k-th frame"
    )
    parser.set_defaults(run=run)


def run(args) -> int:
    from mvsam.sam import load_predictor

    predictor = load_predictor(args.model, checkpoint=args.checkpoint, decoder=TRACK_DECODER)
    tracker = Tracker(predictor, TrackerConfig(sam_every=args.sam_every))
    report = evaluate_davis(tracker, args.data, args.sequences)
    print(report.table())
    write_json_report(args.json, report)
    return 0
