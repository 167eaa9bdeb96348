"""SAM mask decoder: two-way transformer, upscaling, hypernetwork mask heads, IoU head."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mvsam.sam.common import MLP, LayerNorm2d
from mvsam.sam.transformer import TwoWayTransformer


class MaskDecoder(nn.Module):
    def __init__(self, transformer_dim: int = 256, num_multimask_outputs: int = 3) -> None:
        super().__init__()
        self.num_mask_tokens = num_multimask_outputs + 1
        self.transformer = TwoWayTransformer(
            depth=2, embedding_dim=transformer_dim, num_heads=8, mlp_dim=2048
        )
        self.iou_token = nn.Embedding(1, transformer_dim)
        self.mask_tokens = nn.Embedding(self.num_mask_tokens, transformer_dim)
        self.output_upscaling = nn.Sequential(
            nn.ConvTranspose2d(transformer_dim, transformer_dim // 4, kernel_size=2, stride=2),
            LayerNorm2d(transformer_dim // 4),
            nn.GELU(),
            nn.ConvTranspose2d(transformer_dim // 4, transformer_dim // 8, kernel_size=2, stride=2),
            nn.GELU(),
        )
        self.output_hypernetworks_mlps = nn.ModuleList(
            MLP(transformer_dim, transformer_dim, transformer_dim // 8, 3)
            for _ in range(self.num_mask_tokens)
        )
        self.iou_prediction_head = MLP(transformer_dim, 256, self.num_mask_tokens, 3)

    def forward(
        self,
        image_embeddings: torch.Tensor,
        image_pe: torch.Tensor,
        sparse_embeddings: torch.Tensor,
        dense_embeddings: torch.Tensor,
        multimask_output: bool,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Decode B prompt sets against B image embeddings (one per prompt set).

        image_embeddings Bx256x64x64, image_pe 1x256x64x64, sparse BxTx256, dense Bx256x64x64.
        Returns (BxKx256x256 mask logits, BxK predicted IoU) with K = 3 when multimask else 1.
        """
        masks, iou_pred = self.decode_all(image_embeddings, image_pe, sparse_embeddings, dense_embeddings)
        return select_outputs(masks, iou_pred, multimask_output)

    def decode_all(
        self,
        image_embeddings: torch.Tensor,
        image_pe: torch.Tensor,
        sparse_embeddings: torch.Tensor,
        dense_embeddings: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Every mask token's output (the single-mask one first): (Bx4x256x256 logits, Bx4 IoU); the
        graph the exported decoders run (:mod:`mvsam.sam.accelerate`)."""
        batch = sparse_embeddings.shape[0]
        output_tokens = torch.cat([self.iou_token.weight, self.mask_tokens.weight], dim=0)
        tokens = torch.cat([output_tokens.unsqueeze(0).expand(batch, -1, -1), sparse_embeddings], dim=1)
        src = image_embeddings + dense_embeddings
        pos = image_pe.expand(batch, -1, -1, -1)
        _, channels, height, width = src.shape
        tokens_out, src = self.transformer(src, pos, tokens)
        iou_token_out = tokens_out[:, 0]
        mask_tokens_out = tokens_out[:, 1 : 1 + self.num_mask_tokens]
        upscaled = self.output_upscaling(src.transpose(1, 2).reshape(batch, channels, height, width))
        hyper_in = torch.stack(
            [mlp(mask_tokens_out[:, i]) for i, mlp in enumerate(self.output_hypernetworks_mlps)], dim=1
        )
        _, up_channels, up_height, up_width = upscaled.shape
        masks = (hyper_in @ upscaled.flatten(2)).view(batch, -1, up_height, up_width)
        return masks, self.iou_prediction_head(iou_token_out)


def select_outputs(
    masks: torch.Tensor, iou_pred: torch.Tensor, multimask_output: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """SAM's choice among the 4 outputs of :meth:`MaskDecoder.decode_all`: the 3 multimask ones or the
    single one."""
    selected = slice(1, None) if multimask_output else slice(0, 1)
    return masks[:, selected], iou_pred[:, selected]


def upscale_logits(
    low_res_logits: torch.Tensor, input_size: tuple[int, int], original_size: tuple[int, int], pad_to: int
) -> torch.Tensor:
    """BxKx256x256 logits -> BxKxHxW at the original image size (pad removed, bilinear)."""
    logits = F.interpolate(low_res_logits, (pad_to, pad_to), mode="bilinear", align_corners=False)
    logits = logits[..., : input_size[0], : input_size[1]]
    return F.interpolate(logits, original_size, mode="bilinear", align_corners=False)
