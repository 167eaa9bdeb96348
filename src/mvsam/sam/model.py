"""SAM assembled from its three parts, for each supported image encoder."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from mvsam.errors import InputError
from mvsam.sam.mask_decoder import MaskDecoder
from mvsam.sam.prompt_encoder import PromptEncoder
from mvsam.sam.tiny_vit import TinyViT
from mvsam.sam.vit import ViTEncoder

IMAGE_SIZE = 1024  # model input side, pixels
EMBEDDING_SIZE = 64  # image embedding side
LOW_RES_MASK_SIZE = 256  # decoder output side
PIXEL_MEAN = (123.675, 116.28, 103.53)  # ImageNet RGB mean, 0-255 scale
PIXEL_STD = (58.395, 57.12, 57.375)


@dataclass(frozen=True)
class ViTConfig:
    embed_dim: int
    depth: int
    num_heads: int
    global_attn_indexes: tuple[int, ...]


VIT_CONFIGS = {
    "vit_b": ViTConfig(768, 12, 12, (2, 5, 8, 11)),
    "vit_l": ViTConfig(1024, 24, 16, (5, 11, 17, 23)),
    "vit_h": ViTConfig(1280, 32, 16, (7, 15, 23, 31)),
}
MODEL_TYPES = ("mobile_sam", *VIT_CONFIGS)


class Sam(nn.Module):
    """Image encoder + prompt encoder + mask decoder. Pre/post-processing lives in the predictor."""

    def __init__(self, image_encoder: nn.Module) -> None:
        super().__init__()
        self.image_encoder = image_encoder
        self.prompt_encoder = PromptEncoder(
            embed_dim=256,
            image_embedding_size=(EMBEDDING_SIZE, EMBEDDING_SIZE),
            input_image_size=(IMAGE_SIZE, IMAGE_SIZE),
        )
        self.mask_decoder = MaskDecoder(transformer_dim=256, num_multimask_outputs=3)
        self.register_buffer("pixel_mean", torch.tensor(PIXEL_MEAN).view(-1, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(PIXEL_STD).view(-1, 1, 1), persistent=False)


def build_sam(model_type: str) -> Sam:
    """An untrained SAM of the given type ("mobile_sam", "vit_b", "vit_l", "vit_h"), in eval mode."""
    if model_type == "mobile_sam":
        encoder: nn.Module = TinyViT(img_size=IMAGE_SIZE)
    elif model_type in VIT_CONFIGS:
        config = VIT_CONFIGS[model_type]
        encoder = ViTEncoder(config.embed_dim, config.depth, config.num_heads, config.global_attn_indexes)
    else:
        raise InputError(f"unknown model type {model_type!r}; choose one of {', '.join(MODEL_TYPES)}")
    return Sam(encoder).eval()


def load_sam(model_type: str, state_dict: dict[str, torch.Tensor]) -> Sam:
    """Build a SAM and load an official state dict with ``strict=True``.

    Raises ValueError naming missing/unexpected keys or mismatched shapes when the checkpoint is
    not one for ``model_type``.
    """
    model = build_sam(model_type)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    mismatched = [
        key
        for key in set(expected) & set(state_dict)
        if tuple(expected[key].shape) != tuple(state_dict[key].shape)
    ]
    if missing or unexpected or mismatched:

        def preview(keys: list[str]) -> str:
            return ", ".join(keys[:3]) + (f" (+{len(keys) - 3} more)" if len(keys) > 3 else "")

        details = []
        if missing:
            details.append(f"{len(missing)} missing keys: {preview(missing)}")
        if unexpected:
            details.append(f"{len(unexpected)} unexpected keys: {preview(unexpected)}")
        if mismatched:
            details.append(f"{len(mismatched)} keys with other shapes: {preview(sorted(mismatched))}")
        raise InputError(f"the checkpoint is not a {model_type} SAM checkpoint: " + "; ".join(details))
    model.load_state_dict(state_dict, strict=True)
    return model.eval()
