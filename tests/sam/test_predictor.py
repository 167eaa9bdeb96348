"""Parity with the original MobileSAM, batching, the embedding cache and input validation."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mvsam.io.images import read_rgb
from mvsam.sam import Prompt, load_predictor


def _reference(shared_dir):
    reference = shared_dir / "reference"
    cases = json.loads((reference / "mobile_sam_parity.json").read_text())
    arrays = np.load(reference / "mobile_sam_parity.npz")
    return cases, arrays


def _reference_masks(arrays, key: str) -> np.ndarray:
    shape = arrays[key + "masks_shape"]
    return np.unpackbits(arrays[key + "masks_packed"], axis=-1)[..., : shape[-1]].astype(bool).reshape(shape)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


@pytest.fixture(scope="module")
def float32_predictor(mobile_sam_checkpoint):
    """The model code itself (eager torch, float32), whatever the default encoder backend is."""
    return load_predictor("mobile_sam", checkpoint=mobile_sam_checkpoint, cache_dir=None, encoder="torch")


def _parity_outputs(predictor, shared_dir):
    """(embedding error, masks, scores, low-res logits, reference key) per prompt of the parity set."""
    cases, arrays = _reference(shared_dir)
    for case in cases:
        predictor.set_image(read_rgb(shared_dir / case["image"]))
        embedding = predictor.embedding.features.numpy()
        error = np.abs(embedding - arrays[f"case{case['case']}_embedding"].astype(np.float32)).max()
        for index, prompt in enumerate(case["prompts"]):
            masks, scores, logits = predictor.predict(
                points=None if prompt["points"] is None else np.array(prompt["points"]),
                labels=None if prompt["labels"] is None else np.array(prompt["labels"]),
                box=None if prompt["box"] is None else np.array(prompt["box"]),
                multimask=prompt["multimask"],
            )
            yield error, masks, scores, logits, f"case{case['case']}_prompt{index}_"


def test_parity_with_original_mobile_sam(float32_predictor, shared_dir):
    """The ported model code: float32 outputs match the official model's down to the raw logits."""
    _, arrays = _reference(shared_dir)
    for error, masks, scores, logits, key in _parity_outputs(float32_predictor, shared_dir):
        assert error < 1e-3
        reference_masks = _reference_masks(arrays, key)
        assert masks.shape == reference_masks.shape
        assert masks.dtype == bool
        for mask, reference_mask in zip(masks, reference_masks, strict=True):
            assert _iou(mask, reference_mask) >= 0.99
        np.testing.assert_allclose(scores, arrays[key + "iou"], atol=1e-2)
        assert logits.shape == (len(masks), 256, 256)
        np.testing.assert_allclose(logits, arrays[key + "lowres_logits"].astype(np.float32), atol=0.1)


def test_default_encoder_keeps_mask_parity(mobile_sam_predictor, shared_dir):
    """Whatever backend ``auto`` (or ``$MVSAM_ENCODER``) picks, the masks decide: every mask of the parity
    set within IoU 0.99 of the official model's (issue 13)."""
    _, arrays = _reference(shared_dir)
    ious = []
    for _, masks, scores, _, key in _parity_outputs(mobile_sam_predictor, shared_dir):
        reference_masks = _reference_masks(arrays, key)
        ious += [_iou(mask, reference) for mask, reference in zip(masks, reference_masks, strict=True)]
        np.testing.assert_allclose(scores, arrays[key + "iou"], atol=1e-2)
    assert len(ious) == 8 and min(ious) >= 0.99  # openvino-mixed: 0.995 worst; openvino fp32: 1.0


@pytest.fixture(scope="module")
def davis_frames(data_dir):
    folder = data_dir / "davis2016_train8" / "JPEGImages" / "480p" / "dog-agility"
    return [read_rgb(folder / f"{i:05d}.jpg") for i in (0, 10)]


def test_batched_decoding_matches_single_calls(mobile_sam_predictor, davis_frames):
    embeddings = [mobile_sam_predictor.encode(frame) for frame in davis_frames]
    prompts = [
        Prompt(points=np.array([[430.0, 250.0]]), labels=np.array([1])),
        Prompt(points=np.array([[430.0, 250.0], [100.0, 50.0]]), labels=np.array([1, 0])),
        Prompt(box=np.array([300.0, 120.0, 600.0, 400.0])),
        Prompt(points=np.array([[500.0, 300.0]]), labels=np.array([1])),
    ]
    requests = [(embeddings[i % 2], prompt) for i, prompt in enumerate(prompts)]
    batched = mobile_sam_predictor.predict_batch(requests, multimask=True)
    for (embedding, prompt), result in zip(requests, batched, strict=True):
        (single,) = mobile_sam_predictor.predict_batch([(embedding, prompt)], multimask=True)
        np.testing.assert_allclose(result.low_res_logits, single.low_res_logits, atol=1e-4)
        np.testing.assert_allclose(result.scores, single.scores, atol=1e-5)
        assert result.masks.shape == (3, 480, 854)
        assert np.array_equal(result.masks, single.masks)
    # A mask prompt from a previous output refines rather than breaks the mask.
    best = int(np.argmax(batched[0].scores))
    refined = mobile_sam_predictor.predict_batch(
        [
            (
                embeddings[0],
                Prompt(
                    points=prompts[0].points,
                    labels=prompts[0].labels,
                    mask_logits=batched[0].low_res_logits[best],
                ),
            )
        ],
        multimask=False,
    )[0]
    assert _iou(refined.masks[0], batched[0].masks[best]) > 0.8
    low_only = mobile_sam_predictor.predict_batch(requests[:1], return_masks=False)[0]
    assert low_only.masks is None and low_only.low_res_logits.shape == (3, 256, 256)


def test_embedding_cache_round_trip(mobile_sam_checkpoint, tmp_path, davis_frames):
    predictor = load_predictor("mobile_sam", checkpoint=mobile_sam_checkpoint, cache_dir=tmp_path)
    first = predictor.encode(davis_frames[0])
    files = list(tmp_path.rglob("*.npy"))
    assert len(files) == 1
    second = predictor.encode(davis_frames[0])
    assert np.array_equal(first.features.numpy(), second.features.numpy())
    assert (first.original_size, first.input_size) == ((480, 854), (576, 1024))
    files[0].write_bytes(b"not an array")  # a damaged entry is recomputed, not trusted
    third = predictor.encode(davis_frames[0])
    assert np.array_equal(first.features.numpy(), third.features.numpy())
    assert not list(tmp_path.rglob("*.tmp"))


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (np.zeros((20, 30), np.uint8), "grayscale"),
        (np.zeros((20, 30, 4), np.uint8), "RGBA"),
        (np.zeros((20, 30, 3), np.float32), "uint8"),
        (np.zeros((20, 30, 2), np.uint8), "HxWx3"),
        ([[0, 0, 0]], "numpy array"),
    ],
)
def test_bad_images_are_rejected(mobile_sam_predictor, image, message):
    with pytest.raises(ValueError, match=message):
        mobile_sam_predictor.encode(image)


@pytest.mark.parametrize(
    ("prompt", "message"),
    [
        ({}, "empty prompt"),
        ({"points": np.zeros((0, 2)), "labels": np.zeros(0)}, "empty prompt"),
        ({"points": [[900.0, 10.0]], "labels": [1]}, "outside"),
        ({"points": [[10.0, -3.0]], "labels": [1]}, "outside"),
        ({"points": [[10.0, 10.0]], "labels": [2]}, "labels must be 1"),
        ({"points": [[10.0, 10.0]]}, "together"),
        ({"points": [10.0, 10.0], "labels": [1]}, "Nx2"),
        ({"points": [[10.0, 10.0]], "labels": [1, 0]}, "one entry per point"),
        ({"box": [50, 50, 40, 60]}, "x1 > x0"),
        ({"box": [1000, 10, 1200, 60]}, "outside"),
        ({"box": [1, 2, 3]}, "4 finite"),
        ({"mask_logits": np.zeros((64, 64))}, "256x256"),
    ],
)
def test_bad_prompts_are_rejected(mobile_sam_predictor, davis_frames, prompt, message):
    mobile_sam_predictor.set_image(davis_frames[0])
    with pytest.raises(ValueError, match=message):
        mobile_sam_predictor.predict(**prompt)


def test_predict_without_image(mobile_sam_checkpoint):
    predictor = load_predictor("mobile_sam", checkpoint=mobile_sam_checkpoint, cache_dir=None)
    with pytest.raises(ValueError, match="set_image"):
        predictor.predict(points=[[1.0, 1.0]], labels=[1])
