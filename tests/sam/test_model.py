"""The model code loads official checkpoints by their keys and refuses foreign ones."""

from __future__ import annotations

import pytest
import torch

from mvsam.sam.model import MODEL_TYPES, build_sam, load_sam
from mvsam.sam.vit import ViTEncoder
from mvsam.sam.weights import read_state_dict


def test_mobile_sam_checkpoint_loads_strictly(mobile_sam_checkpoint):
    state = read_state_dict(mobile_sam_checkpoint)
    model = load_sam("mobile_sam", state)
    assert set(model.state_dict()) == set(state)
    encoder = sum(p.numel() for k, p in model.image_encoder.named_parameters() if "head" not in k)
    assert encoder == pytest.approx(5.78e6, rel=0.01)  # MobileSAM paper: 5.78M encoder parameters


@pytest.mark.parametrize(("model_type", "millions"), [("vit_b", 93.7), ("vit_l", 312.3), ("vit_h", 641.1)])
def test_vit_models_have_the_published_size(model_type, millions):
    """Parameter counts of SAM ViT-B/L/H as published (checkpoints are not available offline)."""
    with torch.device("meta"):  # shapes only: no memory, no initialisation cost
        model = build_sam(model_type)
    assert sum(p.numel() for p in model.parameters()) / 1e6 == pytest.approx(millions, rel=0.01)
    keys = model.state_dict()
    assert "image_encoder.blocks.0.attn.rel_pos_h" in keys and "image_encoder.pos_embed" in keys


def test_vit_encoder_forward_shape():
    """A narrow two-block ViT (one windowed, one global block) runs the same code path as ViT-B/L/H."""
    encoder = ViTEncoder(embed_dim=32, depth=2, num_heads=2, global_attn_indexes=(1,)).eval()
    with torch.inference_mode():
        out = encoder(torch.randn(1, 3, 1024, 1024))
    assert out.shape == (1, 256, 64, 64)
    assert torch.isfinite(out).all()


def test_wrong_checkpoint_is_rejected(mobile_sam_checkpoint):
    state = read_state_dict(mobile_sam_checkpoint)
    with pytest.raises(ValueError, match="not a vit_b SAM checkpoint"):
        load_sam("vit_b", state)
    del state["mask_decoder.iou_token.weight"]
    with pytest.raises(ValueError, match="1 missing keys"):
        load_sam("mobile_sam", state)


def test_corrupt_checkpoint_file_is_rejected(tmp_path):
    path = tmp_path / "broken.pt"
    path.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(ValueError, match="not a readable SAM checkpoint"):
        read_state_dict(path)


def test_unknown_model_type():
    with pytest.raises(ValueError, match="unknown model type"):
        build_sam("vit_x")
    assert MODEL_TYPES == ("mobile_sam", "vit_b", "vit_l", "vit_h")
