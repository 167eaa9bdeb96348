"""The web app on DTU scan 24 through its HTTP API: click-protocol mIoU next to ``mvsam eval dtu``'s, and
warm click latency (request sent -> every view updated -> response).

    python benchmarks/bench_serve.py --refs 0 16 32 --corrections 3 --json out.json

For each reference view the protocol's 3 positive + 1 negative clicks (``mvsam.evaluate.protocol``) are
posted as one step to a fresh object, every view's mask is read back as PNG and scored against ``mask/``;
then simulated correction clicks (on the worst view, ``correction_click``) are posted one by one and
timed. The same scene, cache and predictor then run ``evaluate_dtu`` (click protocol) for the reference
mIoU. Geometry and embeddings come from the scene's cache (computed first when missing).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from fastapi.testclient import TestClient
from PIL import Image

from mvsam.evaluate.dtu import evaluate_dtu, load_ground_truth
from mvsam.evaluate.metrics import iou
from mvsam.evaluate.protocol import correction_click, protocol_clicks
from mvsam.sam import load_predictor
from mvsam.sam.accelerate import build_decoder
from mvsam.scene import Scene
from mvsam.server import Workspace, create_app
from mvsam.server.workspace import WEB_DECODER

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
BASE_URL = "http://127.0.0.1:8765"


def _masks(client: TestClient, object_id: int, count: int) -> list[np.ndarray]:
    return [
        np.asarray(Image.open(io.BytesIO(client.get(f"/api/objects/{object_id}/masks/{i}.png").content))) > 0
        for i in range(count)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=SHARED / "data" / "dtu_scan24")
    parser.add_argument("--refs", type=int, nargs="+", default=[0, 16, 32])
    parser.add_argument("--corrections", type=int, default=3, help="timed correction clicks per reference")
    parser.add_argument("--checkpoint", type=Path, default=SHARED / "weights" / "mobile_sam.pt")
    parser.add_argument(
        "--decoder", default=WEB_DECODER, help=f"mask decoder backend (the web app's: {WEB_DECODER})"
    )
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    scene = Scene.load(args.data)
    predictor = load_predictor(
        "mobile_sam",
        checkpoint=args.checkpoint,
        cache_dir=scene.cache_dir / "embeddings",
        decoder=args.decoder,
    )
    report: dict = {"scene": str(args.data), "refs": args.refs, "decoder": predictor.decoder.name, "runs": []}
    with tempfile.TemporaryDirectory(prefix="mvsam_bench_serve_") as out:
        workspace = Workspace(args.data, out, predictor=predictor)
        with TestClient(create_app(workspace), base_url=BASE_URL) as client:
            start = time.perf_counter()
            while not (status := client.get("/api/status").json())["ready"]:
                if status["error"]:
                    raise SystemExit(status["error"])
                time.sleep(0.5)
            report["prepare_s"] = time.perf_counter() - start
            count = len(client.get("/api/views").json())
            gts = load_ground_truth(args.data, workspace.scene)
            latencies, server_seconds = [], []
            for reference in args.refs:
                others = [i for i in range(count) if i != reference]
                clicks = protocol_clicks(gts[reference])
                prompts = [
                    {"view": reference, "x": float(x), "y": float(y), "label": int(label)}
                    for (x, y), label in zip(clicks.points, clicks.labels, strict=True)
                ]
                object_id = client.post("/api/objects", json={}).json()["id"]
                tick = time.perf_counter()
                first = client.post(f"/api/objects/{object_id}/prompts", json={"prompts": prompts}).json()
                segment_s = time.perf_counter() - tick
                masks = _masks(client, object_id, count)
                view_iou = [iou(masks[i], gts[i]) for i in others]
                run = {
                    "reference": reference,
                    "iou": float(np.mean(view_iou)),
                    "segment_s": segment_s,
                    "server_s": first["seconds"],
                    "corrections": [],
                }
                for _ in range(args.corrections):
                    worst = others[int(np.argmin(view_iou))]
                    click = correction_click(masks[worst], gts[worst])
                    if click is None:
                        break
                    body = {
                        "view": worst,
                        "x": float(click.x),
                        "y": float(click.y),
                        "label": int(click.positive),
                    }
                    tick = time.perf_counter()
                    update = client.post(f"/api/objects/{object_id}/prompts", json=body).json()
                    latency = time.perf_counter() - tick
                    latencies.append(latency)
                    server_seconds.append(update["seconds"])
                    masks = _masks(client, object_id, count)
                    view_iou = [iou(masks[i], gts[i]) for i in others]
                    run["corrections"].append(
                        {
                            "view": worst,
                            "latency_s": latency,
                            "views_changed": len(update["views_changed"]),
                            "iou": float(np.mean(view_iou)),
                        }
                    )
                report["runs"].append(run)
                print(
                    f"ref {reference}: mIoU {run['iou']:.4f} (segment {segment_s:.2f} s); corrections "
                    + ", ".join(f"{c['latency_s']:.2f} s -> {c['iou']:.4f}" for c in run["corrections"])
                )
    report["api_miou"] = float(np.mean([run["iou"] for run in report["runs"]]))
    report["click_latency_s"] = {
        "median": statistics.median(latencies) if latencies else None,
        "min": min(latencies, default=None),
        "max": max(latencies, default=None),
        "server_median": statistics.median(server_seconds) if server_seconds else None,
    }
    tick = time.perf_counter()
    # `mvsam eval dtu` decodes with the default (torch) decoder
    predictor.decoder = build_decoder(predictor.model, "mobile_sam", predictor.weights_id, "torch")
    reference_report = evaluate_dtu(
        args.data,
        references=args.refs,
        predictor=predictor,
        protocols=("clicks",),
        correction=False,
        progress=False,
    )
    report["eval_dtu_miou"] = reference_report.means["clicks"]["iou"]
    report["eval_dtu_s"] = time.perf_counter() - tick
    report["difference"] = report["api_miou"] - report["eval_dtu_miou"]
    report["machine"] = {
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cpu": platform.processor(),
    }
    report["load_average"] = os.getloadavg()
    latency = report["click_latency_s"]
    print(
        f"mIoU through the API {report['api_miou']:.4f}, mvsam eval dtu {report['eval_dtu_miou']:.4f} "
        f"(difference {report['difference']:+.4f}); warm correction click, all {count} views updated: "
        f"median {latency['median']:.2f} s (server {latency['server_median']:.2f} s)"
        f"; load average {report['load_average'][0]:.1f}"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
