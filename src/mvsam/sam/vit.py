"""SAM 1 ViT image encoder (ViT-B/L/H; Kirillov et al. 2023).

16x16 patches of a 1024x1024 input give a 64x64 token grid with an absolute position embedding;
blocks use 14x14 windowed attention except a few global ones, all with decomposed relative
position biases (one table for rows, one for columns). Parameter names follow the official
checkpoints (``sam_vit_b/l/h``) so they load with ``strict=True``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mvsam.sam.common import MLPBlock, make_neck


class ViTPatchEmbed(nn.Module):
    def __init__(self, patch_size: int, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).permute(0, 2, 3, 1)  # BxHxWxC


class RelPosAttention(nn.Module):
    """Attention on a BxHxWxC grid with decomposed relative position biases."""

    def __init__(self, dim: int, num_heads: int, grid_size: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim**-0.5
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)
        self.rel_pos_h = nn.Parameter(torch.zeros(2 * grid_size - 1, self.head_dim))
        self.rel_pos_w = nn.Parameter(torch.zeros(2 * grid_size - 1, self.head_dim))
        coords = torch.arange(grid_size)
        self.register_buffer("rel_index", coords[:, None] - coords[None, :] + grid_size - 1, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, height, width, _ = x.shape
        qkv = self.qkv(x).reshape(batch, height * width, 3, self.num_heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each B x heads x HW x head_dim
        table_h = self.rel_pos_h[self.rel_index]  # H x H x head_dim
        table_w = self.rel_pos_w[self.rel_index]
        q_grid = q.reshape(batch, self.num_heads, height, width, self.head_dim)
        bias_h = torch.einsum("bnhwc,hkc->bnhwk", q_grid, table_h)
        bias_w = torch.einsum("bnhwc,wkc->bnhwk", q_grid, table_w)
        bias = (bias_h[..., :, None] + bias_w[..., None, :]).reshape(
            batch, self.num_heads, height * width, height * width
        )
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        out = out.transpose(1, 2).reshape(batch, height, width, -1)
        return self.proj(out)


class ViTBlock(nn.Module):
    def __init__(self, dim: int, num_heads: int, window_size: int, grid_size: int) -> None:
        super().__init__()
        self.window_size = window_size
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = RelPosAttention(dim, num_heads, window_size if window_size > 0 else grid_size)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = MLPBlock(dim, dim * 4, nn.GELU)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.norm1(x)
        if self.window_size > 0:
            batch, height, width, channels = x.shape
            window = self.window_size
            pad_h, pad_w = (window - height % window) % window, (window - width % window) % window
            x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
            rows, cols = (height + pad_h) // window, (width + pad_w) // window
            x = x.view(batch, rows, window, cols, window, channels).transpose(2, 3)
            x = self.attn(x.reshape(-1, window, window, channels))
            x = x.view(batch, rows, cols, window, window, channels).transpose(2, 3)
            x = x.reshape(batch, rows * window, cols * window, channels)[:, :height, :width]
        else:
            x = self.attn(x)
        x = shortcut + x
        return x + self.mlp(self.norm2(x))


class ViTEncoder(nn.Module):
    """SAM ViT image encoder: Bx3x1024x1024 normalised image -> Bx256x64x64 embedding."""

    def __init__(
        self,
        embed_dim: int,
        depth: int,
        num_heads: int,
        global_attn_indexes: tuple[int, ...],
        img_size: int = 1024,
        patch_size: int = 16,
        window_size: int = 14,
    ) -> None:
        super().__init__()
        self.img_size = img_size
        grid = img_size // patch_size
        self.patch_embed = ViTPatchEmbed(patch_size, embed_dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, grid, grid, embed_dim))
        self.blocks = nn.ModuleList(
            ViTBlock(embed_dim, num_heads, 0 if i in global_attn_indexes else window_size, grid)
            for i in range(depth)
        )
        self.neck = make_neck(embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return self.neck(x.permute(0, 3, 1, 2))
