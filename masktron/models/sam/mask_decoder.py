"""SAM's mask decoder: output tokens + two-way transformer -> mask logits and predicted IoUs."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from masktron.models.sam.common import MLP, LayerNorm2d
from masktron.models.sam.inplace import (
    Scratch,
    activation_,
    batch_blocks,
    blockwise,
    inplace_ok,
)
from masktron.models.sam.transformer import TwoWayTransformer


class Upscaling(nn.Sequential):
    """The decoder's 4x upscaling: a `Sequential` (Meta's parameter names) whose activations run
    in place on the convolutions' fresh outputs when inferring (`inplace.activation_`; the
    (B, C/8, 4h, 4w) one is 537 MB for 64 prompts), bit-identical to the plain sequence."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) -> (B, C/8, 4h, 4w)."""
        for module in self:
            if isinstance(module, (nn.GELU, nn.ReLU)):
                x = activation_(module, x)
            else:
                x = module(x)
        return x


class MaskDecoder(nn.Module):
    """Predicts masks from an image embedding and prompt embeddings.

    Learned output tokens (one IoU token, `num_multimask_outputs + 1` mask tokens) are prepended
    to the prompt tokens and run through the transformer. The image positions are upscaled 4x by
    transposed convolutions; each mask token goes through its own MLP (a hypernetwork) to give the
    weights of a per-pixel dot product with the upscaled features. Mask token 0 is the single-mask
    output; tokens 1.. are the disambiguating multi-mask outputs.

    Args:
        transformer_dim: channel width C of tokens and image embedding (256).
        transformer: the built two-way transformer.
        num_multimask_outputs: masks predicted for an ambiguous prompt (3).
        iou_head_depth: layers of the IoU-prediction MLP (3).
        iou_head_hidden_dim: hidden width of the IoU-prediction MLP (256).
    """

    def __init__(
        self,
        *,
        transformer_dim: int,
        transformer: TwoWayTransformer,
        num_multimask_outputs: int = 3,
        iou_head_depth: int = 3,
        iou_head_hidden_dim: int = 256,
    ) -> None:
        super().__init__()
        self.transformer_dim = transformer_dim
        self.transformer = transformer
        self.num_multimask_outputs = num_multimask_outputs
        self.num_mask_tokens = num_multimask_outputs + 1
        self.iou_token = nn.Embedding(1, transformer_dim)
        self.mask_tokens = nn.Embedding(self.num_mask_tokens, transformer_dim)
        self.output_upscaling = Upscaling(
            nn.ConvTranspose2d(transformer_dim, transformer_dim // 4, kernel_size=2, stride=2),
            LayerNorm2d(transformer_dim // 4),
            nn.GELU(),
            nn.ConvTranspose2d(transformer_dim // 4, transformer_dim // 8, kernel_size=2, stride=2),
            nn.GELU(),
        )
        self.output_hypernetworks_mlps = nn.ModuleList(
            MLP(
                input_dim=transformer_dim,
                hidden_dim=transformer_dim,
                output_dim=transformer_dim // 8,
                num_layers=3,
            )
            for _ in range(self.num_mask_tokens)
        )
        self.iou_prediction_head = MLP(
            input_dim=transformer_dim,
            hidden_dim=iou_head_hidden_dim,
            output_dim=self.num_mask_tokens,
            num_layers=iou_head_depth,
        )

    def output_token_ids(self, multimask_output: bool) -> list[int]:
        """Indexes of the mask tokens returned for `multimask_output`."""
        return list(range(1, self.num_mask_tokens)) if multimask_output else [0]

    def forward(
        self,
        image_embeddings: torch.Tensor,
        image_pe: torch.Tensor,
        sparse_prompt_embeddings: torch.Tensor,
        dense_prompt_embeddings: torch.Tensor,
        multimask_output: bool,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Predict masks for a batch of B prompts.

        Args:
            image_embeddings: (1 or B, C, h, w); batch 1 is shared by every prompt.
            image_pe: (1, C, h, w) positional codes of the embedding grid.
            sparse_prompt_embeddings: (B, N, C) point/box tokens.
            dense_prompt_embeddings: (B or 1, C, h, w) mask-prompt embedding.
            multimask_output: return the 3 disambiguating masks instead of the single one.

        Returns:
            mask logits (B, M, 4h, 4w) float32 and predicted IoUs (B, M), M = 3 or 1.
        """
        tokens, src = self.run_transformer(
            image_embeddings, image_pe, sparse_prompt_embeddings, dense_prompt_embeddings
        )
        ids = self.output_token_ids(multimask_output)
        iou_pred = self.iou_prediction_head(tokens[:, 0])[:, ids]
        masks = self.masks_from_tokens(tokens, src, ids, image_embeddings.shape[-2:])
        return masks, iou_pred

    def run_transformer(
        self,
        image_embeddings: torch.Tensor,
        image_pe: torch.Tensor,
        sparse_prompt_embeddings: torch.Tensor,
        dense_prompt_embeddings: torch.Tensor,
        scratch: Scratch | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Output tokens and image positions after the transformer.

        Args: as `forward`; `scratch` as `TwoWayTransformer.forward`'s (a caller decoding many
            batches of prompts may keep one for all of them).

        Returns:
            tokens (B, 1 + num_mask_tokens + N, C): token 0 feeds the IoU head, tokens
            1..num_mask_tokens the hypernetworks; and image positions (B, h*w, C), which may
            live in `scratch` (valid until its next use).
        """
        batch = sparse_prompt_embeddings.shape[0]
        if image_embeddings.shape[0] not in (1, batch):
            raise ValueError(
                f"image_embeddings has batch {image_embeddings.shape[0]}, expected 1 (shared) "
                f"or one per prompt ({batch})"
            )
        dense = dense_prompt_embeddings
        if dense.shape[0] > 1 and dense.stride(0) == 0:
            dense = dense[:1]  # an expanded (stride-0) batch is one embedding shared by all prompts
        src = image_embeddings + dense  # (1 or B, C, h, w)
        output_tokens = torch.cat([self.iou_token.weight, self.mask_tokens.weight], dim=0)
        output_tokens = output_tokens.unsqueeze(0).expand(batch, -1, -1)  # (B, 1 + M, C)
        tokens = torch.cat([output_tokens, sparse_prompt_embeddings], dim=1)
        return self.transformer(src, image_pe, tokens, scratch)

    def predict_iou(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, T, C) transformer tokens -> (B, num_mask_tokens) IoUs of all mask tokens."""
        return self.iou_prediction_head(tokens[:, 0])

    def masks_from_tokens(
        self,
        tokens: torch.Tensor,
        src: torch.Tensor,
        mask_token_ids: Sequence[int],
        embedding_hw: Sequence[int],
    ) -> torch.Tensor:
        """Upscale the image positions and apply the hypernetworks of the chosen mask tokens.

        Args:
            tokens: (B, T, C) transformer output tokens.
            src: (B, h*w, C) transformer output image positions.
            mask_token_ids: which mask tokens (0 .. num_mask_tokens - 1) to decode.
            embedding_hw: (h, w) of the image embedding.

        Returns:
            (B, len(mask_token_ids), 4h, 4w) mask logits.
        """
        b, _, c = src.shape
        h, w = int(embedding_hw[0]), int(embedding_hw[1])
        hyper = torch.stack(
            [self.output_hypernetworks_mlps[i](tokens[:, 1 + i]) for i in mask_token_ids], dim=1
        )  # (B, M, C/8)
        # A view with channels-last strides: the upscaling runs channels-last without copies.
        src = src.transpose(1, 2).reshape(b, c, h, w)  # (B, h*w, C) -> (B, C, h, w)
        if not inplace_ok():
            return _apply_hypernetworks(self.output_upscaling(src), hyper)
        # Inferring, a few prompts at a time (`inplace.batch_blocks`): each (n, C/8, 4h, 4w)
        # upscaled map then stays below glibc's mmap threshold, its memory reused from the heap
        # instead of mapped and faulted in afresh (537 MB for 64 prompts at 1024; 0.36 s instead
        # of 0.55 s, 2 threads, 2026-12-07). Every prompt's result is its own (bit-identical);
        # the hypernetworks above run on the whole batch, as their matrix products' rounding
        # may depend on the row count.
        blocks = batch_blocks(b, (c // 8) * (4 * h) * (4 * w) * src.element_size())
        return blockwise(  # (n, C/8, 4h, 4w) upscaled per block -> (n, M, 4h, 4w)
            blocks, lambda s, e: _apply_hypernetworks(self.output_upscaling(src[s:e]), hyper[s:e])
        )


def _apply_hypernetworks(upscaled: torch.Tensor, hyper: torch.Tensor) -> torch.Tensor:
    """Per-pixel dot products of upscaled features with the hypernetworks' outputs.

    Args:
        upscaled: (B, C/8, H, W) features, any strides (channels-last: no copy).
        hyper: (B, M, C/8) one weight vector per mask.

    Returns:
        (B, M, H, W) mask logits.
    """
    b, c8, uh, uw = upscaled.shape
    pixels = upscaled.permute(0, 2, 3, 1).reshape(b, uh * uw, c8)  # (B, H*W, C/8)
    masks = pixels @ hyper.transpose(1, 2)  # (B, H*W, M)
    return masks.transpose(1, 2).reshape(b, -1, uh, uw)  # (B, M, H*W) -> (B, M, H, W)
