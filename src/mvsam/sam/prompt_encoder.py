"""SAM prompt encoder: points, boxes and low-res masks to sparse and dense embeddings."""

from __future__ import annotations

import math

import torch
from torch import nn

from mvsam.sam.common import LayerNorm2d


class RandomFourierPositions(nn.Module):
    """Positional encoding of normalised (x, y) coordinates with a fixed Gaussian projection."""

    def __init__(self, num_pos_feats: int = 128) -> None:
        super().__init__()
        self.register_buffer("positional_encoding_gaussian_matrix", torch.randn(2, num_pos_feats))

    def encode(self, coords01: torch.Tensor) -> torch.Tensor:
        """...x2 coordinates in [0, 1] -> ...x(2*num_pos_feats)."""
        projected = (2 * coords01 - 1) @ self.positional_encoding_gaussian_matrix * (2 * math.pi)
        return torch.cat([torch.sin(projected), torch.cos(projected)], dim=-1)

    def grid(self, height: int, width: int) -> torch.Tensor:
        """Encoding of every cell centre of a height x width grid, C x H x W."""
        device = self.positional_encoding_gaussian_matrix.device
        ys = (torch.arange(height, device=device, dtype=torch.float32) + 0.5) / height
        xs = (torch.arange(width, device=device, dtype=torch.float32) + 0.5) / width
        coords = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)
        return self.encode(coords).permute(2, 0, 1)


class PromptEncoder(nn.Module):
    def __init__(
        self,
        embed_dim: int = 256,
        image_embedding_size: tuple[int, int] = (64, 64),
        input_image_size: tuple[int, int] = (1024, 1024),
        mask_in_chans: int = 16,
    ) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.image_embedding_size = image_embedding_size
        self.input_image_size = input_image_size
        self.pe_layer = RandomFourierPositions(embed_dim // 2)
        # 0: negative point, 1: positive point, 2: box top-left, 3: box bottom-right
        self.point_embeddings = nn.ModuleList(nn.Embedding(1, embed_dim) for _ in range(4))
        self.not_a_point_embed = nn.Embedding(1, embed_dim)
        self.mask_downscaling = nn.Sequential(
            nn.Conv2d(1, mask_in_chans // 4, kernel_size=2, stride=2),
            LayerNorm2d(mask_in_chans // 4),
            nn.GELU(),
            nn.Conv2d(mask_in_chans // 4, mask_in_chans, kernel_size=2, stride=2),
            LayerNorm2d(mask_in_chans),
            nn.GELU(),
            nn.Conv2d(mask_in_chans, embed_dim, kernel_size=1),
        )
        self.no_mask_embed = nn.Embedding(1, embed_dim)

    def dense_positional_encoding(self) -> torch.Tensor:
        """1 x C x 64 x 64 encoding of the image embedding grid."""
        return self.pe_layer.grid(*self.image_embedding_size).unsqueeze(0)

    def _encode_input_coords(self, coords: torch.Tensor) -> torch.Tensor:
        """Coordinates in model-input pixels (pixel centres at +0.5 already applied) -> encodings."""
        height, width = self.input_image_size
        scale = torch.tensor([width, height], dtype=coords.dtype, device=coords.device)
        return self.pe_layer.encode(coords / scale)

    def forward(
        self,
        points: tuple[torch.Tensor, torch.Tensor] | None,
        boxes: torch.Tensor | None,
        masks: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Embed prompts in model-input pixel coordinates.

        points: (BxNx2 float (x, y), BxN int labels: 1 positive, 0 negative, -1 padding);
        boxes: Bx4 (x0, y0, x1, y1); masks: Bx1x256x256 logits.
        Returns sparse BxTxC and dense BxCx64x64 embeddings.
        """
        batch = next(t.shape[0] for t in (points[0] if points else None, boxes, masks) if t is not None)
        device = self.no_mask_embed.weight.device
        sparse = [torch.empty(batch, 0, self.embed_dim, device=device)]
        if points is not None:
            coords, labels = points
            coords = coords + 0.5
            if boxes is None:  # SAM appends one padding point when no box is given
                coords = torch.cat([coords, torch.zeros(batch, 1, 2, device=device)], dim=1)
                labels = torch.cat([labels, -torch.ones(batch, 1, dtype=labels.dtype, device=device)], dim=1)
            embedding = self._encode_input_coords(coords)
            padding = (labels == -1).unsqueeze(-1)
            embedding = torch.where(padding, self.not_a_point_embed.weight, embedding)
            embedding = embedding + (labels == 0).unsqueeze(-1) * self.point_embeddings[0].weight
            embedding = embedding + (labels == 1).unsqueeze(-1) * self.point_embeddings[1].weight
            sparse.append(embedding)
        if boxes is not None:
            corners = self._encode_input_coords(boxes.reshape(-1, 2, 2) + 0.5)
            corners = corners + torch.stack(
                [self.point_embeddings[2].weight[0], self.point_embeddings[3].weight[0]]
            )
            sparse.append(corners)
        return torch.cat(sparse, dim=1), self.dense_embeddings(masks, batch)

    def dense_embeddings(self, masks: torch.Tensor | None, batch: int) -> torch.Tensor:
        """Bx256x64x64 dense embeddings of Bx1x256x256 mask logits, or of "no mask" when None."""
        if masks is not None:
            return self.mask_downscaling(masks)
        height, width = self.image_embedding_size
        return self.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(batch, -1, height, width)
