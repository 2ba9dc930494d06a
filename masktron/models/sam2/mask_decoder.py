"""SAM 2's mask decoder: SAM's decoder plus high-resolution skips, an object-score head and
dynamic fallback to the multi-mask outputs.

Differences from SAM's decoder (`masktron.models.sam.MaskDecoder`, which this class extends):
- an optional object-score token, placed before the IoU token, whose head predicts whether the
  object is present at all;
- stride-4 and stride-8 backbone features, projected by `conv_s0` / `conv_s1`, are added inside
  the upscaling path;
- the IoU head may end in a sigmoid;
- when one mask is asked for, an unstable single-mask output (IoU between the masks thresholded at
  +-delta below `dynamic_multimask_stability_thresh`) falls back to the best multi-mask output.
"""

from __future__ import annotations

import torch
from torch import nn

from masktron.models.sam.common import MLP
from masktron.models.sam.inplace import batch_blocks, blockwise, inplace_ok
from masktron.models.sam.mask_decoder import MaskDecoder
from masktron.models.sam.transformer import TwoWayTransformer


def build_sam2_two_way_transformer(
    *, depth: int = 2, embedding_dim: int = 256, num_heads: int = 8, mlp_dim: int = 2048
) -> TwoWayTransformer:
    """SAM's two-way transformer with SAM 2's parameter names.

    The computation is SAM's; SAM 2's checkpoints only name the token MLP `mlp.layers.{0,1}`
    instead of `mlp.lin{1,2}`, so each block gets an `MLP` (Linear -> ReLU -> Linear).
    """
    transformer = TwoWayTransformer(
        depth=depth, embedding_dim=embedding_dim, num_heads=num_heads, mlp_dim=mlp_dim
    )
    for layer in transformer.layers:
        layer.mlp = MLP(
            input_dim=embedding_dim, hidden_dim=mlp_dim, output_dim=embedding_dim, num_layers=2
        )
    return transformer


class SAM2MaskDecoder(MaskDecoder):
    """Predicts masks, IoUs, output tokens and object scores (Meta's `MaskDecoder` of SAM 2).

    Args:
        transformer_dim: token and embedding width C (256).
        transformer: the built two-way transformer.
        num_multimask_outputs: masks of an ambiguous prompt (3).
        iou_head_depth: layers of the IoU MLP.
        iou_head_hidden_dim: hidden width of the IoU MLP.
        use_high_res_features: add the projected stride-4/8 features while upscaling.
        iou_prediction_use_sigmoid: squash the predicted IoUs to (0, 1).
        dynamic_multimask_via_stability: single-mask requests fall back to the best multi-mask
            output when the single mask is unstable (inference only).
        dynamic_multimask_stability_delta: logit margin of the stability score (0.05).
        dynamic_multimask_stability_thresh: least stability kept (0.98).
        pred_obj_scores: predict an object-presence logit; otherwise it is a constant 10.
        pred_obj_scores_mlp: a 3-layer MLP instead of a linear object-score head.
        use_multimask_token_for_obj_ptr: return the multi-mask tokens when multi-mask output is
            asked for (else always the single-mask token).
    """

    def __init__(
        self,
        *,
        transformer_dim: int,
        transformer: TwoWayTransformer,
        num_multimask_outputs: int = 3,
        iou_head_depth: int = 3,
        iou_head_hidden_dim: int = 256,
        use_high_res_features: bool = False,
        iou_prediction_use_sigmoid: bool = False,
        dynamic_multimask_via_stability: bool = False,
        dynamic_multimask_stability_delta: float = 0.05,
        dynamic_multimask_stability_thresh: float = 0.98,
        pred_obj_scores: bool = False,
        pred_obj_scores_mlp: bool = False,
        use_multimask_token_for_obj_ptr: bool = False,
    ) -> None:
        super().__init__(
            transformer_dim=transformer_dim,
            transformer=transformer,
            num_multimask_outputs=num_multimask_outputs,
            iou_head_depth=iou_head_depth,
            iou_head_hidden_dim=iou_head_hidden_dim,
        )
        self.pred_obj_scores = pred_obj_scores
        if pred_obj_scores:
            self.obj_score_token = nn.Embedding(1, transformer_dim)
        self.use_multimask_token_for_obj_ptr = use_multimask_token_for_obj_ptr
        self.use_high_res_features = use_high_res_features
        if use_high_res_features:
            self.conv_s0 = nn.Conv2d(transformer_dim, transformer_dim // 8, kernel_size=1)
            self.conv_s1 = nn.Conv2d(transformer_dim, transformer_dim // 4, kernel_size=1)
        self.iou_prediction_use_sigmoid = iou_prediction_use_sigmoid
        if pred_obj_scores:
            self.pred_obj_score_head: nn.Module = (
                MLP(
                    input_dim=transformer_dim,
                    hidden_dim=transformer_dim,
                    output_dim=1,
                    num_layers=3,
                )
                if pred_obj_scores_mlp
                else nn.Linear(transformer_dim, 1)
            )
        self.dynamic_multimask_via_stability = dynamic_multimask_via_stability
        self.dynamic_multimask_stability_delta = dynamic_multimask_stability_delta
        self.dynamic_multimask_stability_thresh = dynamic_multimask_stability_thresh

    def forward(  # type: ignore[override]
        self,
        image_embeddings: torch.Tensor,
        image_pe: torch.Tensor,
        sparse_prompt_embeddings: torch.Tensor,
        dense_prompt_embeddings: torch.Tensor,
        multimask_output: bool,
        repeat_image: bool,
        high_res_features: list[torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Predict masks for B prompts.

        Args:
            image_embeddings: (B, C, h, w), or (1, C, h, w) with `repeat_image` (one image
                shared by all prompts).
            image_pe: (1, C, h, w) position codes of the embedding grid.
            sparse_prompt_embeddings: (B, N, C) point/box tokens.
            dense_prompt_embeddings: (B, C, h, w) mask-prompt embedding.
            multimask_output: return the 3 multi-mask outputs instead of one mask.
            repeat_image: the image embedding is shared by the B prompts.
            high_res_features: [(B or 1, C/8, 4h, 4w), (B or 1, C/4, 2h, 2w)] projected features
                (`conv_s0` / `conv_s1` outputs), needed with `use_high_res_features`.

        Returns:
            mask logits (B, M, 4h, 4w), IoUs (B, M), output tokens (B, M or 1, C) for the object
            pointer, object-score logits (B, 1); M = 3 or 1.
        """
        masks, iou_pred, mask_tokens, object_score_logits = self.predict_masks(
            image_embeddings,
            image_pe,
            sparse_prompt_embeddings,
            dense_prompt_embeddings,
            repeat_image=repeat_image,
            high_res_features=high_res_features,
        )
        if multimask_output:
            masks, iou_pred = masks[:, 1:], iou_pred[:, 1:]
        elif self.dynamic_multimask_via_stability and not self.training:
            masks, iou_pred = self._dynamic_multimask_via_stability(masks, iou_pred)
        else:
            masks, iou_pred = masks[:, 0:1], iou_pred[:, 0:1]
        if multimask_output and self.use_multimask_token_for_obj_ptr:
            sam_tokens = mask_tokens[:, 1:]  # (B, 3, C)
        else:
            # The single-mask token is the object's memory token, even after a multi-mask click
            # (SAM 2 was trained tracking after several clicks).
            sam_tokens = mask_tokens[:, 0:1]  # (B, 1, C)
        return masks, iou_pred, sam_tokens, object_score_logits

    def predict_masks(
        self,
        image_embeddings: torch.Tensor,
        image_pe: torch.Tensor,
        sparse_prompt_embeddings: torch.Tensor,
        dense_prompt_embeddings: torch.Tensor,
        *,
        repeat_image: bool,
        high_res_features: list[torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """All mask tokens' outputs: masks (B, 4, 4h, 4w), IoUs (B, 4), mask tokens (B, 4, C) and
        object-score logits (B, 1). Arguments as in `forward`."""
        batch = sparse_prompt_embeddings.shape[0]
        weights = [self.iou_token.weight, self.mask_tokens.weight]
        if self.pred_obj_scores:
            weights.insert(0, self.obj_score_token.weight)
        first = 1 if self.pred_obj_scores else 0  # index of the IoU token
        output_tokens = torch.cat(weights, dim=0).unsqueeze(0).expand(batch, -1, -1)
        tokens = torch.cat([output_tokens, sparse_prompt_embeddings], dim=1)  # (B, T, C)

        if repeat_image and image_embeddings.shape[0] != 1:
            image_embeddings = torch.repeat_interleave(image_embeddings, batch, dim=0)
        elif not repeat_image and image_embeddings.shape[0] != batch:
            raise ValueError(
                f"image_embeddings has batch {image_embeddings.shape[0]}, the prompts {batch}; "
                f"pass repeat_image=True to share one image"
            )
        if image_pe.shape[0] != 1:
            raise ValueError(f"image_pe must have batch 1, got {tuple(image_pe.shape)}")
        dense = dense_prompt_embeddings
        if dense.shape[0] > 1 and dense.stride(0) == 0:
            dense = dense[:1]  # the "no mask" embedding expanded over the batch (a view)
        # A batch-1 image (shared by all prompts) stays batch 1 in the transformer, which
        # broadcasts it, instead of being copied per prompt.
        src = image_embeddings + dense  # (1 or B, C, h, w)
        hs, src_out = self.transformer(src, image_pe, tokens)  # (B, T, C), (B, h*w, C)
        iou_token_out = hs[:, first]
        mask_tokens_out = hs[:, first + 1 : first + 1 + self.num_mask_tokens]  # (B, 4, C)

        b, _, c = src_out.shape
        h, w = image_embeddings.shape[-2:]
        grid = src_out.transpose(1, 2).reshape(b, c, h, w)  # (B, h*w, C) -> (B, C, h, w)
        hyper = torch.stack(
            [mlp(mask_tokens_out[:, i]) for i, mlp in enumerate(self.output_hypernetworks_mlps)],
            dim=1,
        )  # (B, 4, C/8)
        # Inferring, a few prompts at a time, as in SAM's decoder (`MaskDecoder.masks_from_
        # tokens`): heap-sized upscaled maps, each prompt's result its own (bit-identical).
        blocks = [(0, b)]
        if inplace_ok():
            blocks = batch_blocks(b, (c // 8) * (4 * h) * (4 * w) * grid.element_size())

        def block_masks(start: int, end: int) -> torch.Tensor:
            part = None
            if high_res_features is not None:  # (batch 1: shared by every prompt)
                part = [f[start:end] if f.shape[0] == b else f for f in high_res_features]
            upscaled = self._upscale(grid[start:end], part)  # (n, C/8, 4h, 4w)
            n, c8, uh, uw = upscaled.shape
            # (n, 4, C/8) @ (n, C/8, 4h*4w) -> (n, 4, 4h*4w) -> (n, 4, 4h, 4w)
            return (hyper[start:end] @ upscaled.reshape(n, c8, uh * uw)).reshape(n, -1, uh, uw)

        masks = blockwise(blocks, block_masks)

        iou_pred = self.iou_prediction_head(iou_token_out)
        if self.iou_prediction_use_sigmoid:
            iou_pred = iou_pred.sigmoid()
        if self.pred_obj_scores:
            object_score_logits = self.pred_obj_score_head(hs[:, 0])
        else:
            # No head: the object is taken as present (sigmoid(10) ~ 1).
            object_score_logits = iou_pred.new_full((iou_pred.shape[0], 1), 10.0)
        return masks, iou_pred, mask_tokens_out, object_score_logits

    def _upscale(
        self, src: torch.Tensor, high_res_features: list[torch.Tensor] | None
    ) -> torch.Tensor:
        """(B, C, h, w) -> (B, C/8, 4h, 4w), adding the stride-8 and stride-4 features."""
        if not self.use_high_res_features:
            return self.output_upscaling(src)
        if high_res_features is None:
            raise ValueError("this decoder uses high-resolution features: pass high_res_features")
        deconv1, norm1, act1, deconv2, act2 = self.output_upscaling
        feat_s0, feat_s1 = high_res_features
        x = act1(norm1(deconv1(src) + feat_s1))
        return act2(deconv2(x) + feat_s0)

    def _get_stability_scores(self, mask_logits: torch.Tensor) -> torch.Tensor:
        """(B, M, H, W) logits -> (B, M) IoU of the masks thresholded at +delta and -delta."""
        flat = mask_logits.flatten(-2)
        delta = self.dynamic_multimask_stability_delta
        inter = (flat > delta).sum(dim=-1).float()
        union = (flat > -delta).sum(dim=-1).float()
        return torch.where(union > 0, inter / union, 1.0)

    def _dynamic_multimask_via_stability(
        self, all_mask_logits: torch.Tensor, all_iou_scores: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Token 0's mask where stable, else the multi-mask output with the best IoU.

        Args:
            all_mask_logits: (B, 4, H, W); all_iou_scores: (B, 4).

        Returns:
            (B, 1, H, W) logits and (B, 1) IoUs.
        """
        multi_ious = all_iou_scores[:, 1:]
        best = multi_ious.argmax(dim=-1)
        rows = torch.arange(all_iou_scores.shape[0], device=all_iou_scores.device)
        best_logits = all_mask_logits[:, 1:][rows, best].unsqueeze(1)  # (B, 1, H, W)
        best_ious = multi_ious[rows, best].unsqueeze(1)  # (B, 1)
        single_logits = all_mask_logits[:, 0:1]
        stable = self._get_stability_scores(single_logits) >= (
            self.dynamic_multimask_stability_thresh
        )  # (B, 1)
        logits = torch.where(stable[..., None, None], single_logits, best_logits)
        ious = torch.where(stable, all_iou_scores[:, 0:1], best_ious)
        return logits, ious
