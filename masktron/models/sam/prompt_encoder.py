"""SAM's prompt encoder: points and boxes -> sparse tokens, a low-res mask -> a dense embedding.

Positions are encoded with random Fourier features (Tancik et al., https://arxiv.org/abs/2006.10739):
a fixed Gaussian matrix projects normalised (x, y) and sin/cos of the projection form the code.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from masktron.models.sam.common import LayerNorm2d

# Point labels understood by the prompt encoder.
LABEL_PADDING = -1  # "not a point": fills batches of prompts with different point counts
LABEL_NEGATIVE = 0
LABEL_POSITIVE = 1
LABEL_BOX_TOP_LEFT = 2  # a box given as two labelled points (the form of SAM's ONNX interface)
LABEL_BOX_BOTTOM_RIGHT = 3


class PositionEmbeddingRandom(nn.Module):
    """Random Fourier position encoding of (x, y) coordinates.

    Args:
        num_pos_feats: projections; the code has 2 * num_pos_feats channels (sin and cos).
        scale: standard deviation of the Gaussian frequencies for a fresh model (checkpoints
            overwrite the matrix).
    """

    positional_encoding_gaussian_matrix: torch.Tensor

    def __init__(self, *, num_pos_feats: int = 64, scale: float = 1.0) -> None:
        super().__init__()
        self.register_buffer(
            "positional_encoding_gaussian_matrix", scale * torch.randn((2, num_pos_feats))
        )

    def _encode(self, coords: torch.Tensor) -> torch.Tensor:
        """(..., 2) xy normalised to [0, 1] -> (..., 2 * num_pos_feats)."""
        matrix = self.positional_encoding_gaussian_matrix
        proj = (2 * coords - 1) @ matrix
        proj = 2 * math.pi * proj
        return torch.cat([torch.sin(proj), torch.cos(proj)], dim=-1)

    def forward(self, size: tuple[int, int]) -> torch.Tensor:
        """Codes of the centres of an (h, w) grid: (2 * num_pos_feats, h, w) float32."""
        h, w = size
        device = self.positional_encoding_gaussian_matrix.device
        ys = (torch.arange(h, device=device, dtype=torch.float32) + 0.5) / h
        xs = (torch.arange(w, device=device, dtype=torch.float32) + 0.5) / w
        grid = torch.stack(torch.broadcast_tensors(xs[None, :], ys[:, None]), dim=-1)  # (h, w, 2)
        return self._encode(grid).permute(2, 0, 1)  # (h, w, C) -> (C, h, w)

    def forward_with_coords(
        self, coords: torch.Tensor, image_size: tuple[int, int]
    ) -> torch.Tensor:
        """Codes of pixel coordinates.

        Args:
            coords: (B, N, 2) xy in the pixel frame of an image of `image_size` = (H, W).

        Returns:
            (B, N, 2 * num_pos_feats) float32.
        """
        h, w = image_size
        normed = torch.stack([coords[..., 0] / w, coords[..., 1] / h], dim=-1)
        return self._encode(normed.float())


class PromptEncoder(nn.Module):
    """Encodes point, box and mask prompts for the mask decoder.

    Args:
        embed_dim: width of the prompt tokens and of the dense embedding (256).
        image_embedding_size: (h, w) of the image embedding (64, 64).
        input_image_size: (H, W) of the padded encoder input (1024, 1024), the prompts' frame.
        mask_in_chans: hidden channels of the mask down-scaler (16).
    """

    def __init__(
        self,
        *,
        embed_dim: int,
        image_embedding_size: tuple[int, int],
        input_image_size: tuple[int, int],
        mask_in_chans: int,
    ) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.input_image_size = (int(input_image_size[0]), int(input_image_size[1]))
        self.image_embedding_size = (int(image_embedding_size[0]), int(image_embedding_size[1]))
        self.pe_layer = PositionEmbeddingRandom(num_pos_feats=embed_dim // 2)
        # Indexes 0/1: negative/positive point; 2/3: top-left/bottom-right box corner.
        self.point_embeddings = nn.ModuleList(nn.Embedding(1, embed_dim) for _ in range(4))
        self.not_a_point_embed = nn.Embedding(1, embed_dim)
        self.mask_input_size = (4 * image_embedding_size[0], 4 * image_embedding_size[1])
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

    def _embedding(self, index: int) -> torch.Tensor:
        """(1, embed_dim) learned vector of `point_embeddings[index]`."""
        embedding = self.point_embeddings[index]
        assert isinstance(embedding, nn.Embedding)
        return embedding.weight

    def get_dense_pe(self) -> torch.Tensor:
        """Position codes of the image-embedding grid: (1, embed_dim, h, w)."""
        return self.pe_layer(self.image_embedding_size).unsqueeze(0)

    def embed_points(self, points: torch.Tensor, labels: torch.Tensor, pad: bool) -> torch.Tensor:
        """(B, N, 2) xy, (B, N) labels -> (B, N (+1 padding point), embed_dim).

        Labels: -1 padding, 0 negative, 1 positive, 2 / 3 top-left / bottom-right box corner.
        """
        points = points + 0.5  # pixel index -> pixel centre
        if pad:
            # Without a box, a "not a point" token is appended (as SAM was trained).
            points = torch.cat([points, points.new_zeros(points.shape[0], 1, 2)], dim=1)
            labels = torch.cat([labels, labels.new_full((labels.shape[0], 1), -1)], dim=1)
        codes = self.pe_layer.forward_with_coords(points, self.input_image_size)
        labels = labels[..., None]
        codes = codes + (labels == LABEL_NEGATIVE) * self._embedding(0)
        codes = codes + (labels == LABEL_POSITIVE) * self._embedding(1)
        codes = codes + (labels == LABEL_BOX_TOP_LEFT) * self._embedding(2)
        codes = codes + (labels == LABEL_BOX_BOTTOM_RIGHT) * self._embedding(3)
        return torch.where(labels == LABEL_PADDING, self.not_a_point_embed.weight, codes)

    def _embed_boxes(self, boxes: torch.Tensor) -> torch.Tensor:
        """(B, 4) XYXY -> (B, 2, embed_dim): one token per corner."""
        corners = (boxes + 0.5).reshape(-1, 2, 2)  # (B, 4) -> (B, 2 corners, xy)
        codes = self.pe_layer.forward_with_coords(corners, self.input_image_size)
        corner_embed = torch.cat([self._embedding(2), self._embedding(3)])
        return codes + corner_embed  # (B, 2, C) + (2, C)

    def forward(
        self,
        points: tuple[torch.Tensor, torch.Tensor] | None,
        boxes: torch.Tensor | None,
        masks: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Embed prompts; every prompt kind present must have the same batch size B.

        Args:
            points: (coords (B, N, 2) xy, labels (B, N) int in {-1, 0, 1}) in the input frame.
            boxes: (B, 4) XYXY in the input frame.
            masks: (B, 1, 4h, 4w) mask logits (a previous low-res output).

        Returns:
            sparse (B, N', embed_dim) float32 tokens, and dense (B, embed_dim, h, w) float32;
            without a mask the dense embedding is the learned "no mask" vector expanded over
            the batch (a stride-0 view, which tells the decoder that all prompts share it).
        """
        batch = self._batch_size(points, boxes, masks)
        device = self.no_mask_embed.weight.device
        parts = [torch.empty((batch, 0, self.embed_dim), device=device)]
        if points is not None:
            coords, labels = points
            parts.append(self.embed_points(coords, labels, pad=boxes is None))
        if boxes is not None:
            parts.append(self._embed_boxes(boxes))
        sparse = torch.cat(parts, dim=1)
        if masks is not None:
            dense = self.mask_downscaling(masks)
        else:
            h, w = self.image_embedding_size
            dense = self.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(batch, -1, h, w)
        return sparse, dense

    @staticmethod
    def _batch_size(
        points: tuple[torch.Tensor, torch.Tensor] | None,
        boxes: torch.Tensor | None,
        masks: torch.Tensor | None,
    ) -> int:
        sizes = {}
        if points is not None:
            sizes["points"] = points[0].shape[0]
        if boxes is not None:
            sizes["boxes"] = boxes.shape[0]
        if masks is not None:
            sizes["masks"] = masks.shape[0]
        if len(set(sizes.values())) > 1:
            raise ValueError(f"prompt batch sizes differ: {sizes}")
        return next(iter(sizes.values()), 1)
