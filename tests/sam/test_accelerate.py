"""Fast encoder backends: parity with the official MobileSAM, BN folding, caching and fallbacks."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch

from mvsam.cache import hash_array, hash_bytes
from mvsam.io.images import read_rgb
from mvsam.sam import Prompt, accelerate, load_predictor
from mvsam.sam.accelerate import build_encoder, fold_batchnorm, onnx_path
from mvsam.sam.model import build_sam, load_sam
from mvsam.sam.tiny_vit import ConvBN
from mvsam.sam.weights import read_state_dict, weights_fingerprint


@pytest.fixture
def shared_dir(data_dir):
    """``shared/``: the reference outputs of the official MobileSAM sit next to ``data/``."""
    if not (data_dir.parent / "reference" / "mobile_sam_parity.npz").is_file():
        pytest.skip("shared/reference not present")
    return data_dir.parent


def _case0_parity(predictor, shared) -> tuple[float, list[float], np.ndarray]:
    """Embedding max abs error, mask IoUs and score errors of case 0 prompt 0 against the reference."""
    case = json.loads((shared / "reference" / "mobile_sam_parity.json").read_text())[0]
    arrays = np.load(shared / "reference" / "mobile_sam_parity.npz")
    predictor.set_image(read_rgb(shared / case["image"]))
    error = np.abs(predictor.embedding.features.numpy() - arrays["case0_embedding"].astype(np.float32)).max()
    prompt = case["prompts"][0]
    masks, scores, _ = predictor.predict(
        np.array(prompt["points"]), np.array(prompt["labels"]), multimask=True
    )
    shape = arrays["case0_prompt0_masks_shape"]
    expected = np.unpackbits(arrays["case0_prompt0_masks_packed"], axis=-1)[..., : shape[-1]]
    expected = expected.astype(bool).reshape(shape)
    ious = [float((m & e).sum() / max((m | e).sum(), 1)) for m, e in zip(masks, expected, strict=True)]
    return float(error), ious, np.abs(scores - arrays["case0_prompt0_iou"])


def _assert_float32_parity(predictor, shared) -> None:
    """A float32 backend matches the reference like eager float32 (measured embedding error 2.4e-4)."""
    error, ious, score_errors = _case0_parity(predictor, shared)
    assert error < 2e-2
    assert min(ious) >= 0.99
    assert score_errors.max() < 1e-2


@pytest.mark.slow
def test_onnx_backend_matches_reference_and_replaces_a_damaged_export(
    mobile_sam_checkpoint, shared_dir, monkeypatch
):
    monkeypatch.setattr(accelerate, "_SESSIONS", {})  # no session shared from other tests
    encoder = build_sam("mobile_sam").image_encoder
    damaged = onnx_path(weights_fingerprint(mobile_sam_checkpoint), "mobile_sam", encoder)
    damaged.parent.mkdir(parents=True, exist_ok=True)
    damaged.write_bytes(b"not an onnx file")

    predictor = load_predictor("mobile_sam", mobile_sam_checkpoint, cache_dir=None, encoder="onnx")

    assert predictor.encoder_name == f"onnx-fp32-v{accelerate.ONNX_EXPORT_VERSION}"
    assert damaged.stat().st_size > 10_000_000  # re-exported: ~40 MB of float32 weights
    _assert_float32_parity(predictor, shared_dir)
    with pytest.raises(ValueError, match="1x3x1024x1024"):
        predictor.encoder(torch.zeros(1, 3, 512, 512))


@pytest.mark.slow
def test_fused_torch_backend_matches_reference(mobile_sam_checkpoint, shared_dir):
    predictor = load_predictor("mobile_sam", mobile_sam_checkpoint, cache_dir=None, encoder="torch-fused")

    assert predictor.encoder_name == "torch-fused-fp32"
    _assert_float32_parity(predictor, shared_dir)


def test_folding_batchnorm_keeps_outputs_and_the_original(mobile_sam_checkpoint):
    encoder = load_sam("mobile_sam", read_state_dict(mobile_sam_checkpoint)).image_encoder
    stage = encoder.layers[0]  # two MBConv blocks and a patch merging: 9 ConvBN
    folded = fold_batchnorm(stage)
    pixels = torch.randn(1, 64, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        expected, actual = stage(pixels), folded(pixels)

    assert not any(isinstance(m, (ConvBN, torch.nn.BatchNorm2d)) for m in folded.modules())
    assert sum(isinstance(m, ConvBN) for m in stage.modules()) == 9  # the original is untouched
    assert actual.shape == expected.shape == (1, 16 * 16, 128)
    torch.testing.assert_close(actual, expected, atol=1e-4, rtol=1e-4)


@pytest.mark.slow
def test_openvino_is_the_default_and_bf16_is_opt_in_with_its_own_key(
    mobile_sam_checkpoint, shared_dir, monkeypatch
):
    monkeypatch.delenv(accelerate.ENCODER_ENV, raising=False)
    fp32 = load_predictor("mobile_sam", mobile_sam_checkpoint, cache_dir=None)
    monkeypatch.setenv(accelerate.ENCODER_ENV, "openvino-bf16")
    bf16 = load_predictor("mobile_sam", mobile_sam_checkpoint, cache_dir=None)  # reuses the export

    assert fp32.encoder_name == f"openvino-fp32-v{accelerate.ONNX_EXPORT_VERSION}"
    _assert_float32_parity(fp32, shared_dir)
    with pytest.raises(ValueError, match="1x3x1024x1024"):
        fp32.encoder(torch.zeros(1, 3, 512, 512))

    assert bf16.encoder_name == f"openvino-bf16-v{accelerate.ONNX_EXPORT_VERSION}"
    error, ious, _ = _case0_parity(bf16, shared_dir)
    assert 1e-3 < error < 0.2  # measured 3.5e-2: not float32, hence its own cache key
    assert min(ious) >= 0.97  # measured 0.980 worst over the whole parity set
    monkeypatch.setenv(accelerate.ENCODER_ENV, "tensorrt")
    with pytest.raises(ValueError, match="MVSAM_ENCODER='tensorrt' is not an encoder backend"):
        load_predictor("mobile_sam", mobile_sam_checkpoint, cache_dir=None)


@pytest.mark.slow
def test_mixed_precision_encoder_keeps_mask_parity_under_its_own_key(
    mobile_sam_checkpoint, shared_dir, monkeypatch
):
    monkeypatch.delenv(accelerate.ENCODER_ENV, raising=False)
    mixed = load_predictor("mobile_sam", mobile_sam_checkpoint, cache_dir=None, encoder="openvino-mixed")

    assert mixed.encoder_name == f"openvino-mixed-v{accelerate.ONNX_EXPORT_VERSION}"
    image = np.zeros((8, 8, 3), np.uint8)
    fp32_key = hash_bytes("mobile_sam", mixed.weights_id, "openvino-fp32-v1", "1024", hash_array(image))
    assert mixed._cache_key(image) != fp32_key  # bf16 in the tail: never mixed with fp32 embeddings
    error, ious, score_errors = _case0_parity(mixed, shared_dir)
    assert 1e-4 < error < 2e-2  # measured 6.2e-3 worst over the parity set (all bf16: 3.5e-2)
    assert min(ious) >= 0.99  # measured 0.995 worst over the whole parity set (all bf16: 0.980)
    assert score_errors.max() < 1e-2
    with pytest.raises(ValueError, match="1x3x1024x1024"):
        mixed.encoder(torch.zeros(1, 3, 512, 512))


def test_openvino_falls_back_to_onnx_then_torch(monkeypatch, caplog):
    monkeypatch.setattr(accelerate, "openvino_available", lambda: False)
    monkeypatch.setattr(accelerate, "load_exported_encoder", lambda encoder, path, *rest: object())
    model = build_sam("mobile_sam")
    with caplog.at_level(logging.WARNING, logger="mvsam.sam.accelerate"):
        backend = build_encoder(model, "mobile_sam", "no-ov", "openvino")
    assert backend.name == f"onnx-fp32-v{accelerate.ONNX_EXPORT_VERSION}"
    assert "openvino is not installed" in caplog.text
    assert build_encoder(model, "mobile_sam", "no-ov", "auto").name.startswith("onnx-fp32")
    monkeypatch.setattr(accelerate, "onnxruntime_available", lambda: False)
    assert build_encoder(model, "mobile_sam", "no-ov", "openvino-bf16").name == "torch-fused-fp32"


def test_onnx_falls_back_to_torch_without_onnxruntime(monkeypatch, caplog):
    monkeypatch.setattr(accelerate, "onnxruntime_available", lambda: False)
    monkeypatch.setattr(accelerate, "openvino_available", lambda: False)
    model = build_sam("mobile_sam")
    with caplog.at_level(logging.WARNING, logger="mvsam.sam.accelerate"):
        backend = build_encoder(model, "mobile_sam", "no-ort", "onnx")
    assert backend.name == "torch-fused-fp32"
    assert "onnxruntime is not installed" in caplog.text
    assert build_encoder(model, "mobile_sam", "no-ort", "auto").name == "torch-fused-fp32"


def test_onnx_falls_back_to_torch_when_export_fails(monkeypatch, caplog):
    def failing_export(encoder, path):
        raise RuntimeError("exporter broke")

    monkeypatch.setattr(accelerate, "export_onnx", failing_export)
    with caplog.at_level(logging.WARNING, logger="mvsam.sam.accelerate"):
        backend = build_encoder(build_sam("mobile_sam"), "mobile_sam", "export-fails", "auto")
    assert backend.name == "torch-fused-fp32"
    assert "exporter broke" in caplog.text
    assert not onnx_path("export-fails", "mobile_sam", build_sam("mobile_sam").image_encoder).exists()


def test_backend_choice_is_validated_and_vit_defaults_to_torch():
    model = build_sam("mobile_sam")
    with pytest.raises(ValueError, match="unknown encoder backend 'tensorrt'"):
        build_encoder(model, "mobile_sam", "any", "tensorrt")
    assert build_encoder(model, "mobile_sam", "any", "torch").encode is model.image_encoder
    assert build_encoder(model, "vit_b", "any", "auto").name == "torch-fp32"


def _parity_requests(predictor, shared) -> list[tuple[object, Prompt, bool]]:
    """Every prompt of the parity set (with its embedding), plus each one again with its own first
    low-res logits as a mask prompt (the segmenter's later rounds)."""
    requests = []
    for case in json.loads((shared / "reference" / "mobile_sam_parity.json").read_text()):
        embedding = predictor.encode(read_rgb(shared / case["image"]))
        for prompt in case["prompts"]:
            points = None if prompt["points"] is None else np.array(prompt["points"], dtype=np.float64)
            labels = None if prompt["labels"] is None else np.array(prompt["labels"])
            box = None if prompt["box"] is None else np.array(prompt["box"], dtype=np.float64)
            requests.append((embedding, Prompt(points=points, labels=labels, box=box), prompt["multimask"]))
    return requests


@pytest.mark.slow
def test_exported_decoders_match_the_torch_decoder(mobile_sam_checkpoint, shared_dir, monkeypatch):
    monkeypatch.setattr(accelerate, "_SESSIONS", {})
    predictor = load_predictor(
        "mobile_sam", mobile_sam_checkpoint, cache_dir=None, encoder="torch", decoder="torch"
    )
    requests = _parity_requests(predictor, shared_dir)

    def decode(request: tuple) -> object:
        embedding, prompt, multimask = request
        return predictor.predict_batch([(embedding, prompt)], multimask=multimask, return_masks=False)[0]

    expected = [decode(r) for r in requests]
    with_masks = [
        (e, Prompt(p.points, p.labels, p.box, mask_logits=r.low_res_logits[0]), m)
        for (e, p, m), r in zip(requests, expected, strict=True)
    ]
    expected += [decode(r) for r in with_masks]
    for backend in ("onnx", "openvino"):
        decoder = accelerate.build_decoder(predictor.model, "mobile_sam", predictor.weights_id, backend)
        assert decoder.name == f"{backend}-fp32-v{accelerate.ONNX_EXPORT_VERSION}"
        predictor.decoder = decoder
        actual = [decode(r) for r in requests + with_masks]
        # one batched call with mixed structures gives the same as single calls
        batched = predictor.predict_batch(
            [(e, p) for e, p, _ in with_masks], multimask=True, return_masks=False
        )
        for mine, theirs in zip(actual, expected, strict=True):
            pairs = zip(mine.low_res_logits > 0, theirs.low_res_logits > 0, strict=True)
            assert min(_iou(a, b) for a, b in pairs) >= 0.99
            np.testing.assert_allclose(mine.scores, theirs.scores, atol=1e-4)
            np.testing.assert_allclose(mine.low_res_logits, theirs.low_res_logits, atol=2e-3)
        for (_, _, multimask), mine, single in zip(with_masks, batched, actual[len(requests) :], strict=True):
            if multimask:
                np.testing.assert_allclose(mine.low_res_logits, single.low_res_logits, atol=1e-4)
    _assert_float32_parity(predictor, shared_dir)  # against the official model too


def test_bf16_decoder_keeps_full_size_masks_under_its_own_key(mobile_sam_predictor, shared_dir, monkeypatch):
    """The web app's decoder: bfloat16 changes logits (so it really runs bf16) but not the masks."""
    from mvsam.sam.predictor import SamPredictor, upscale_logits

    monkeypatch.setattr(accelerate, "_SESSIONS", {})
    shared = mobile_sam_predictor
    model, weights = shared.model, shared.weights_id
    torch_decoder = accelerate.build_decoder(model, "mobile_sam", weights, "torch")
    predictor = SamPredictor(
        model, "mobile_sam", weights, shared.cache, encoder=shared.encoder, decoder=torch_decoder
    )

    def decode(request: tuple) -> object:
        embedding, prompt, multimask = request
        return predictor.predict_batch([(embedding, prompt)], multimask=multimask, return_masks=False)[0]

    requests = _parity_requests(predictor, shared_dir)
    expected = [decode(r) for r in requests]
    requests += [
        (e, Prompt(p.points, p.labels, p.box, mask_logits=r.low_res_logits[0]), m)
        for (e, p, m), r in zip(requests, expected, strict=True)
    ]
    expected += [decode(r) for r in requests[len(expected) :]]
    predictor.decoder = accelerate.build_decoder(model, "mobile_sam", weights, "openvino-bf16")
    assert predictor.decoder.name == f"openvino-bf16-v{accelerate.ONNX_EXPORT_VERSION}"
    ious, largest_change = [], 0.0
    for request, theirs in zip(requests, expected, strict=True):
        mine = decode(request)
        np.testing.assert_allclose(mine.scores, theirs.scores, atol=1e-2)
        largest_change = max(largest_change, float(np.abs(mine.low_res_logits - theirs.low_res_logits).max()))
        for a, b in zip(mine.low_res_logits, theirs.low_res_logits, strict=True):
            full = [upscale_logits(torch.from_numpy(x)[None, None], request[0])[0, 0] > 0 for x in (a, b)]
            ious.append(_iou(full[0].numpy(), full[1].numpy()))
    assert min(ious) >= 0.98  # measured 0.987-0.991 (mean 0.997); DTU through the web app: README
    assert largest_change > 1e-2  # not float32 under another name
    # the graph takes one prompt set a call: a batch is decoded row by row, with the same results
    embedding, prompt, _ = requests[-1]
    single = predictor.predict_batch([(embedding, prompt)], return_masks=False)[0]
    for pair in predictor.predict_batch([(embedding, prompt)] * 2, return_masks=False, chunk_size=2):
        np.testing.assert_array_equal(pair.low_res_logits, single.low_res_logits)
    # a CPU without native bf16 gets the float32 graph, named as such
    monkeypatch.setattr(accelerate, "_native_bf16", lambda: False)
    fallback = accelerate.build_decoder(model, "mobile_sam", weights, "openvino-bf16")
    assert fallback.name == f"openvino-fp32-v{accelerate.ONNX_EXPORT_VERSION}"


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def test_decoder_backend_choice_and_fallbacks(monkeypatch, caplog):
    model = build_sam("mobile_sam")
    with pytest.raises(ValueError, match="unknown decoder backend 'tensorrt'"):
        accelerate.build_decoder(model, "mobile_sam", "any", "tensorrt")
    monkeypatch.setenv(accelerate.DECODER_ENV, "cuda")
    with pytest.raises(ValueError, match="MVSAM_DECODER='cuda' is not a decoder backend"):
        accelerate.build_decoder(model, "mobile_sam", "any", "auto")
    monkeypatch.setenv(accelerate.DECODER_ENV, "torch")
    assert accelerate.build_decoder(model, "mobile_sam", "any", "auto").name == "torch-fp32"
    monkeypatch.delenv(accelerate.DECODER_ENV)
    monkeypatch.setattr(accelerate, "openvino_available", lambda: False)
    monkeypatch.setattr(accelerate, "onnxruntime_available", lambda: False)
    with caplog.at_level(logging.WARNING, logger="mvsam.sam.accelerate"):
        backend = accelerate.build_decoder(model, "mobile_sam", "no-runtime", "openvino")
    assert backend.name == "torch-fp32" and backend.chunk_size == 4
    assert "openvino is not installed" in caplog.text
    # the torch backend is the model's own decoder: same outputs as calling it directly
    sparse, masks = torch.randn(2, 3, 256), torch.randn(2, 1, 256, 256)
    features = torch.randn(2, 256, 64, 64)
    pe = model.prompt_encoder.dense_positional_encoding()
    with torch.inference_mode():
        for given in (None, masks):
            logits, scores = backend.decode(features, sparse, given)
            dense = model.prompt_encoder(None, None, given)[1] if given is not None else None
            if dense is None:
                dense = model.prompt_encoder.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(2, -1, 64, 64)
            single_logits, single_scores = model.mask_decoder(features, pe, sparse, dense, False)
            assert logits.shape == (2, 4, 256, 256) and scores.shape == (2, 4)
            assert torch.equal(logits[:, :1], single_logits) and torch.equal(scores[:, :1], single_scores)


def test_decoder_falls_back_to_torch_when_export_fails(monkeypatch, caplog):
    def failing_export(graph, path, single=False):
        raise RuntimeError("decoder exporter broke")

    monkeypatch.setattr(accelerate, "export_decoder_onnx", failing_export)
    with caplog.at_level(logging.WARNING, logger="mvsam.sam.accelerate"):
        backend = accelerate.build_decoder(build_sam("mobile_sam"), "mobile_sam", "export-fails", "auto")
    assert backend.name == "torch-fp32"
    assert "decoder exporter broke" in caplog.text
