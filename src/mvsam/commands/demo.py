"""``mvsam demo``: segment the bundled tabletop scene and write masks and overlays."""

from __future__ import annotations

from mvsam.commands.common import add_model_arguments
from mvsam.demo.run import run_demo


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("demo", help="run mvsam on the bundled demo scene")
    parser.add_argument("--out", default="mvsam_demo", help="output folder (default: ./mvsam_demo)")
    add_model_arguments(parser)
    parser.add_argument("--points-per-side", type=int, default=16, help="automatic mask grid density")
    parser.set_defaults(run=run)


def run(args) -> int:
    report = run_demo(args.out, args.model, args.checkpoint, args.points_per_side)
    print(
        f"clicked the {report.click_object} at {report.click_xy} in view {report.click_view}: "
        f"mask IoU with ground truth {report.click_iou:.3f} (SAM score {report.click_score:.3f})"
    )
    print(
        f"propagated to all {len(report.multiview_ious)} views in {report.multiview_s:.2f} s: mean IoU with "
        f"ground truth {report.multiview_mean_iou:.3f} (worst view {min(report.multiview_ious.values()):.3f})"
    )
    print(
        f"automatic masks: {report.automatic_masks}, finding {report.automatic_objects_found} of "
        f"{report.objects} objects at IoU >= 0.8"
    )
    print(
        f"seconds: encode {report.encode_s:.2f}, decode {report.decode_s:.3f}, "
        f"automatic {report.automatic_s:.2f}"
    )
    print(f"wrote {len(report.outputs)} files and report.json under {args.out}/")
    return 0
