"""SAM's prompt encoder and mask decoder as one ONNX graph, with the interface of Meta's export.

The image encoder runs once per image (in PyTorch, on a server or a GPU); the light prompt part
then runs per click in any ONNX runtime (a browser, an annotation tool). The graph's inputs and
outputs keep the names, shapes and meaning of `segment_anything`'s ONNX export, so tools built
for Meta's `.onnx` files load ours unchanged:

Inputs:
    image_embeddings: (1, 256, 64, 64) float32, `SamPredictor.get_image_embedding()`.
    point_coords: (1, N, 2) float32 XY in the 1024-long-side frame
        (`SamPredictor.transform.apply_coords`). A box is two points, its top-left and
        bottom-right corners; without a box, append a padding point (0, 0).
    point_labels: (1, N) float32: 1 object, 0 background, 2 / 3 box corners, -1 padding point.
    mask_input: (1, 1, 256, 256) float32 low-res logits of an earlier prediction.
    has_mask_input: (1,) float32, 1 to use `mask_input`, 0 to ignore it.
    orig_im_size: (2,) float32 (H, W) of the original image.

Outputs:
    masks: (1, M, H, W) float32 logits at the original size (a mask is `masks > 0`).
    iou_predictions: (1, M) float32 predicted IoUs (or stability scores, see below).
    low_res_masks: (1, M, 256, 256) float32 logits, to feed back as `mask_input`.
    With `return_extra_metrics`, `stability_scores` (1, M) and `areas` (1, M) int64 of the
    full-size masks come before `low_res_masks`.

M is 4 (the single-mask output first, then the 3 multi-mask outputs), or 1 with
`return_single_mask`: the single-mask output when the prompt has more than two points
(counting the padding point), else the best of the 3 multi-mask outputs.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from masktron.models.sam.sam import Sam
from masktron.predictors.amg_utils import calculate_stability_score

__all__ = ["ONNX_INPUT_NAMES", "SamOnnxModel", "export_sam_onnx"]

ONNX_INPUT_NAMES = (
    "image_embeddings",
    "point_coords",
    "point_labels",
    "mask_input",
    "has_mask_input",
    "orig_im_size",
)


class SamOnnxModel(nn.Module):
    """Prompt encoder + mask decoder + mask post-processing of a `Sam`, traceable for export.

    Args:
        model: the SAM model (its image encoder is not used).
        return_single_mask: return one mask per prompt instead of all 4 outputs.
        use_stability_score: report the low-res masks' stability scores in place of the
            predicted IoUs.
        return_extra_metrics: also return stability scores and areas of the full-size masks.
        stability_score_offset: logit offset of the stability score.
    """

    def __init__(
        self,
        model: Sam,
        *,
        return_single_mask: bool = False,
        use_stability_score: bool = False,
        return_extra_metrics: bool = False,
        stability_score_offset: float = 1.0,
    ) -> None:
        super().__init__()
        self.prompt_encoder = model.prompt_encoder
        self.mask_decoder = model.mask_decoder
        self.img_size = model.image_encoder.img_size
        self.mask_threshold = model.mask_threshold
        self.return_single_mask = return_single_mask
        self.use_stability_score = use_stability_score
        self.return_extra_metrics = return_extra_metrics
        self.stability_score_offset = stability_score_offset

    def output_names(self) -> list[str]:
        if self.return_extra_metrics:
            return ["masks", "iou_predictions", "stability_scores", "areas", "low_res_masks"]
        return ["masks", "iou_predictions", "low_res_masks"]

    def forward(
        self,
        image_embeddings: torch.Tensor,
        point_coords: torch.Tensor,
        point_labels: torch.Tensor,
        mask_input: torch.Tensor,
        has_mask_input: torch.Tensor,
        orig_im_size: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        """Masks for one prompt; shapes and frames in the module docstring."""
        sparse = self.prompt_encoder.embed_points(point_coords, point_labels, pad=False)
        dense = self._dense_embedding(mask_input, has_mask_input)
        decoder = self.mask_decoder
        tokens, src = decoder.run_transformer(
            image_embeddings, self.prompt_encoder.get_dense_pe(), sparse, dense
        )
        all_tokens = list(range(decoder.num_mask_tokens))
        low_res = decoder.masks_from_tokens(tokens, src, all_tokens, image_embeddings.shape[-2:])
        scores = decoder.predict_iou(tokens)  # (1, 4)
        if self.use_stability_score:
            scores = calculate_stability_score(
                low_res, self.mask_threshold, self.stability_score_offset
            )
        if self.return_single_mask:
            low_res, scores = self._select_single_mask(low_res, scores, point_coords.shape[1])
        masks = self._upscale(low_res, orig_im_size)
        if not self.return_extra_metrics:
            return masks, scores, low_res
        stability = calculate_stability_score(
            masks, self.mask_threshold, self.stability_score_offset
        )
        areas = (masks > self.mask_threshold).sum((-2, -1))
        return masks, scores, stability, areas, low_res

    def _dense_embedding(
        self, mask_input: torch.Tensor, has_mask_input: torch.Tensor
    ) -> torch.Tensor:
        """(1, 1, 256, 256) logits, (1,) flag -> (1, C, 64, 64): the mask's embedding, or the
        learned "no mask" vector when the flag is 0."""
        from_mask = self.prompt_encoder.mask_downscaling(mask_input)
        no_mask = self.prompt_encoder.no_mask_embed.weight.reshape(1, -1, 1, 1)  # (1, C) -> 4-D
        return has_mask_input * from_mask + (1 - has_mask_input) * no_mask

    def _select_single_mask(
        self, masks: torch.Tensor, scores: torch.Tensor, num_points: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 4, h, w), (B, 4) -> (B, 1, h, w), (B, 1).

        Token 0 (the single-mask output) gets a bonus of 1000 per point above 2.5, so it wins
        for prompts of 3+ points and loses for 1 click + padding or a lone box; otherwise the
        highest score wins.
        """
        bonus = torch.zeros_like(scores[:1])  # (1, 4)
        bonus[:, 0] = 1000.0
        best = torch.argmax(scores + (num_points - 2.5) * bonus, dim=1)  # (B,)
        rows = torch.arange(masks.shape[0], device=masks.device)
        return masks[rows, best].unsqueeze(1), scores[rows, best].unsqueeze(1)

    def _upscale(self, low_res: torch.Tensor, orig_im_size: torch.Tensor) -> torch.Tensor:
        """(B, M, 256, 256) logits -> (B, M, H, W): to the padded input, crop the padding, then
        to the original size (`Sam.postprocess_masks`, with sizes computed in the graph)."""
        size = self.img_size
        masks = F.interpolate(low_res, (size, size), mode="bilinear", align_corners=False)
        # ResizeLongestSide's shape: round(side * size / long side)
        resized = torch.floor(orig_im_size * (size / orig_im_size.max()) + 0.5).to(torch.int64)
        masks = masks[..., : resized[0], : resized[1]]
        h, w = orig_im_size.to(torch.int64)
        return F.interpolate(masks, size=(h, w), mode="bilinear", align_corners=False)


def example_inputs(model: Sam, num_points: int = 3) -> tuple[torch.Tensor, ...]:
    """Inputs of the right shapes and dtypes for tracing `SamOnnxModel(model)`."""
    channels = model.prompt_encoder.embed_dim
    h, w = model.prompt_encoder.image_embedding_size
    mask_h, mask_w = model.prompt_encoder.mask_input_size
    return (
        torch.randn(1, channels, h, w),
        torch.randint(0, model.image_encoder.img_size, (1, num_points, 2)).float(),
        torch.randint(-1, 4, (1, num_points)).float(),
        torch.randn(1, 1, mask_h, mask_w),
        torch.tensor([1.0]),
        torch.tensor([480.0, 640.0]),
    )


def export_sam_onnx(
    model: Sam,
    path: str | os.PathLike,
    *,
    opset: int = 18,
    return_single_mask: bool = False,
    use_stability_score: bool = False,
    return_extra_metrics: bool = False,
) -> str:
    """Write the prompt-to-mask part of `model` to an ONNX file (one file, weights inside).

    The number of points is a dynamic axis; the original image size is an input. The file
    appears only when complete (written to a temporary name, then renamed).

    Args:
        model: a `Sam` on the CPU.
        path: the `.onnx` file to write.
        opset: ONNX opset version (18 or newer).
        return_single_mask, use_stability_score, return_extra_metrics: see `SamOnnxModel`.

    Returns:
        The path written.

    Raises:
        RuntimeError: with torch older than 2.6, or without the `onnx` / `onnxscript` packages
            (the `export` extra).
    """
    version = tuple(int(part) for part in torch.__version__.split("+")[0].split(".")[:2])
    if version < (2, 6):
        raise RuntimeError(f"ONNX export needs torch >= 2.6, this is torch {torch.__version__}")
    for module in ("onnx", "onnxscript"):
        try:
            __import__(module)
        except ImportError as e:
            raise RuntimeError(
                f"ONNX export needs the {module!r} package: pip install 'masktron[export]'"
            ) from e
    wrapper = SamOnnxModel(
        model,
        return_single_mask=return_single_mask,
        use_stability_score=use_stability_score,
        return_extra_metrics=return_extra_metrics,
    ).eval()
    num_points = torch.export.Dim("num_points", min=1, max=4096)
    dynamic: dict[str, dict[int, Any] | None] = {name: None for name in ONNX_INPUT_NAMES}
    dynamic["point_coords"] = {1: num_points}
    dynamic["point_labels"] = {1: num_points}
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".onnx")
    os.close(fd)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # Both point inputs share the `num_points` axis; the exporter says so, harmlessly.
            warnings.filterwarnings("ignore", message=".*shares the same shape constraints")
            torch.onnx.export(
                wrapper,
                example_inputs(model),
                tmp,
                dynamo=True,
                external_data=False,
                dynamic_shapes=dynamic,
                input_names=list(ONNX_INPUT_NAMES),
                output_names=wrapper.output_names(),
                opset_version=opset,
            )
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path
