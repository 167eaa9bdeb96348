"""TinyViT-5M image encoder as used by MobileSAM (Wu et al. 2022; Zhang et al. 2023).

Four stages at 1/4, 1/8, 1/16, 1/16 of a 1024x1024 input: MBConv blocks first, then windowed
attention blocks with a learned relative-position bias and a depthwise "local" conv between
attention and MLP. MobileSAM keeps the last stage at 64x64 (its patch merging has stride 1) and
adds SAM's neck. Parameter names follow the official checkpoint so it loads with ``strict=True``.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import nn

from mvsam.sam.common import make_neck


class ConvBN(nn.Sequential):
    """Conv2d without bias followed by BatchNorm (keys ``c`` and ``bn``)."""

    def __init__(
        self, in_ch: int, out_ch: int, kernel: int = 1, stride: int = 1, pad: int = 0, groups: int = 1
    ):
        super().__init__()
        self.add_module("c", nn.Conv2d(in_ch, out_ch, kernel, stride, pad, groups=groups, bias=False))
        self.add_module("bn", nn.BatchNorm2d(out_ch))


class PatchEmbed(nn.Module):
    """Two stride-2 3x3 convs: 1024 -> 256 tokens per side."""

    def __init__(self, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.seq = nn.Sequential(
            ConvBN(in_chans, embed_dim // 2, 3, 2, 1), nn.GELU(), ConvBN(embed_dim // 2, embed_dim, 3, 2, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.seq(x)


class MBConv(nn.Module):
    """Inverted residual block: 1x1 expand, 3x3 depthwise, 1x1 project, residual, GELU."""

    def __init__(self, dim: int, expand_ratio: float) -> None:
        super().__init__()
        hidden = int(dim * expand_ratio)
        self.conv1 = ConvBN(dim, hidden, 1)
        self.conv2 = ConvBN(hidden, hidden, 3, 1, 1, groups=hidden)
        self.conv3 = ConvBN(hidden, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.gelu(self.conv1(x))
        y = F.gelu(self.conv2(y))
        return F.gelu(self.conv3(y) + x)


def merging_stride(out_dim: int) -> int:
    """MobileSAM keeps the last stage at 64x64: merging into its widths (320, 448, 576) has stride 1."""
    return 1 if out_dim in (320, 448, 576) else 2


class PatchMerging(nn.Module):
    """Downsample between stages; input BxCxHxW or BxLxC, output BxL'xC'."""

    def __init__(self, resolution: int, dim: int, out_dim: int) -> None:
        super().__init__()
        self.resolution = resolution
        stride = merging_stride(out_dim)
        self.conv1 = ConvBN(dim, out_dim, 1)
        self.conv2 = ConvBN(out_dim, out_dim, 3, stride, 1, groups=out_dim)
        self.conv3 = ConvBN(out_dim, out_dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 3:
            batch = x.shape[0]
            x = x.transpose(1, 2).reshape(batch, -1, self.resolution, self.resolution)
        x = F.gelu(self.conv1(x))
        x = F.gelu(self.conv2(x))
        x = self.conv3(x)
        return x.flatten(2).transpose(1, 2)


class Stage(nn.Module):
    """A run of blocks at one resolution, then an optional patch merging (keys ``blocks``, ``downsample``)."""

    def __init__(self, blocks: list[nn.Module], downsample: PatchMerging | None) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.downsample(x) if self.downsample is not None else x


class WindowAttention(nn.Module):
    """Multi-head attention inside a window with a bias per (|dy|, |dx|) offset and head."""

    def __init__(self, dim: int, num_heads: int, window_size: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.key_dim = dim // num_heads
        self.scale = self.key_dim**-0.5
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        points = list(itertools.product(range(window_size), range(window_size)))
        # Offset (|dy|, |dx|) is numbered a * window_size + b: the order in which the pairs with the
        # first point first produce them, which is how the checkpoint's bias table is laid out.
        index = torch.tensor(
            [[abs(p[0] - q[0]) * window_size + abs(p[1] - q[1]) for q in points] for p in points]
        )
        self.attention_biases = nn.Parameter(torch.zeros(num_heads, window_size * window_size))
        self.register_buffer("attention_bias_idxs", index, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, _ = x.shape
        qkv = self.qkv(self.norm(x)).view(batch, tokens, self.num_heads, 3 * self.key_dim)
        q, k, v = qkv.permute(0, 2, 1, 3).split(self.key_dim, dim=3)
        # index_select on the flat index is ~50x faster than advanced indexing with the 2-D index, and
        # a 4-D (1, heads, L, L) bias lets SDPA use its fused CPU kernel (a 3-D one takes the slow
        # unfused path).
        index = self.attention_bias_idxs
        bias = self.attention_biases.index_select(1, index.flatten()).view(1, self.num_heads, *index.shape)
        bias = bias.to(q.dtype)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        return self.proj(out.transpose(1, 2).reshape(batch, tokens, -1))


class TinyViTBlock(nn.Module):
    def __init__(self, dim: int, resolution: int, num_heads: int, window_size: int, mlp_ratio: float):
        super().__init__()
        self.resolution = resolution
        self.window_size = window_size
        self.attn = WindowAttention(dim, num_heads, window_size)
        self.local_conv = ConvBN(dim, dim, 3, 1, 1, groups=dim)
        self.mlp = _TinyMlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, channels = x.shape
        side, window = self.resolution, self.window_size
        if side == window:
            x = x + self.attn(x)
        else:
            grid = x.view(batch, side, side, channels)
            pad = (window - side % window) % window
            if pad:
                grid = F.pad(grid, (0, 0, 0, pad, 0, pad))
            padded = side + pad
            count = padded // window
            windows = (
                grid.view(batch, count, window, count, window, channels)
                .transpose(2, 3)
                .reshape(batch * count * count, window * window, channels)
            )
            windows = self.attn(windows)
            grid = (
                windows.view(batch, count, count, window, window, channels)
                .transpose(2, 3)
                .reshape(batch, padded, padded, channels)
            )
            x = x + grid[:, :side, :side].reshape(batch, tokens, channels)
        x = x.transpose(1, 2).reshape(batch, channels, side, side)
        x = self.local_conv(x).view(batch, channels, tokens).transpose(1, 2)
        return x + self.mlp(x)


class _TinyMlp(nn.Module):
    """Pre-norm MLP of a TinyViT block (keys norm, fc1, fc2)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(self.norm(x))))


class TinyViT(nn.Module):
    """MobileSAM image encoder: Bx3x1024x1024 normalised image -> Bx256x64x64 embedding."""

    def __init__(
        self,
        img_size: int = 1024,
        embed_dims: tuple[int, ...] = (64, 128, 160, 320),
        depths: tuple[int, ...] = (2, 2, 6, 2),
        num_heads: tuple[int, ...] = (2, 4, 5, 10),
        window_sizes: tuple[int, ...] = (7, 7, 14, 7),
        mlp_ratio: float = 4.0,
        num_classes: int = 1000,
    ) -> None:
        super().__init__()
        self.img_size = img_size
        self.patch_embed = PatchEmbed(3, embed_dims[0])
        resolution = img_size // 4
        layers: list[nn.Module] = []
        for index, dim in enumerate(embed_dims):
            out_dim = embed_dims[index + 1] if index + 1 < len(embed_dims) else None
            if index == 0:
                blocks: list[nn.Module] = [MBConv(dim, mlp_ratio) for _ in range(depths[0])]
            else:
                blocks = [
                    TinyViTBlock(dim, resolution, num_heads[index], window_sizes[index], mlp_ratio)
                    for _ in range(depths[index])
                ]
            downsample = PatchMerging(resolution, dim, out_dim) if out_dim is not None else None
            layers.append(Stage(blocks, downsample))
            if out_dim is not None:
                resolution //= merging_stride(out_dim)
        self.layers = nn.ModuleList(layers)
        self.final_resolution = resolution
        # The classification head is unused but part of the checkpoint, so it is kept for strict loading.
        self.norm_head = nn.LayerNorm(embed_dims[-1])
        self.head = nn.Linear(embed_dims[-1], num_classes)
        self.neck = make_neck(embed_dims[-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tail(self.trunk(x))

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        """Every stage but the last: Bx3x1024x1024 -> BxNxC tokens (N = 64 * 64, C = 320 for MobileSAM).

        Split from :meth:`tail` so that an accelerated backend can run the two in different precisions.
        """
        x = self.patch_embed(x)
        for layer in self.layers[:-1]:
            x = layer(x)
        return x

    def tail(self, x: torch.Tensor) -> torch.Tensor:
        """The last stage and the neck: BxNxC tokens from :meth:`trunk` -> Bx256x64x64 embedding."""
        x = self.layers[-1](x)
        batch, _, channels = x.shape
        side = self.final_resolution
        x = x.view(batch, side, side, channels).permute(0, 3, 1, 2)
        return self.neck(x)
