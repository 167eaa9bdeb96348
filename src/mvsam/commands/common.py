"""Arguments and outputs that several commands share."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from mvsam.sam.model import MODEL_TYPES


def add_model_arguments(parser) -> None:
    """``--model`` and ``--checkpoint``, resolved by :func:`mvsam.sam.load_predictor`."""
    parser.add_argument("--model", default="mobile_sam", choices=MODEL_TYPES, help="SAM model type")
    parser.add_argument(
        "--checkpoint", type=Path, help="SAM checkpoint file (default: the verified cached one)"
    )


def write_json_report(path: Path, report) -> None:
    """Write a dataclass report as indented JSON and say where."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(asdict(report), indent=2))
    print(f"wrote {path}")
