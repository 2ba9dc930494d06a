"""`ImageList`: images of different sizes padded into one batch tensor, keeping each true size."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


class ImageList:
    """A padded batch plus the (height, width) of each image before padding.

    Args:
        tensor: (N, C, H_pad, W_pad) batch; images sit at the top-left, padding at bottom/right.
        image_sizes: each image's (height, width) inside the batch.
    """

    def __init__(self, tensor: torch.Tensor, image_sizes: list[tuple[int, int]]):
        self.tensor = tensor
        self.image_sizes = image_sizes

    def __len__(self) -> int:
        return len(self.image_sizes)

    def __getitem__(self, idx: int) -> torch.Tensor:
        """The idx-th image without its padding: (C, H, W)."""
        h, w = self.image_sizes[idx]
        return self.tensor[idx, ..., :h, :w]

    def to(self, device: torch.device | str) -> ImageList:
        return ImageList(self.tensor.to(device), self.image_sizes)

    @property
    def device(self) -> torch.device:
        return self.tensor.device

    @staticmethod
    def from_tensors(
        tensors: Sequence[torch.Tensor], size_divisibility: int = 0, pad_value: float = 0.0
    ) -> ImageList:
        """Pad (C, H, W) tensors at the bottom/right to a common size.

        The common size is the largest height and width, rounded up to a multiple of
        `size_divisibility` when it is > 0 (32 for FPN backbones, so every level halves exactly).
        """
        if len(tensors) == 0:
            raise ValueError("ImageList.from_tensors needs at least one image")
        for t in tensors:
            if t.shape[:-2] != tensors[0].shape[:-2]:
                raise ValueError(f"images differ in leading dims: {t.shape} vs {tensors[0].shape}")
        image_sizes = [(int(t.shape[-2]), int(t.shape[-1])) for t in tensors]
        max_h = max(s[0] for s in image_sizes)
        max_w = max(s[1] for s in image_sizes)
        if size_divisibility > 1:
            stride = size_divisibility
            max_h = (max_h + stride - 1) // stride * stride
            max_w = (max_w + stride - 1) // stride * stride
        if len(tensors) == 1:
            h, w = image_sizes[0]
            padded = F.pad(tensors[0], [0, max_w - w, 0, max_h - h], value=pad_value)
            batched = padded.unsqueeze(0)  # (C, H, W) -> (1, C, H, W)
        else:
            shape = (len(tensors), *tensors[0].shape[:-2], max_h, max_w)
            batched = tensors[0].new_full(shape, pad_value)
            for img, pad_img in zip(tensors, batched):
                pad_img[..., : img.shape[-2], : img.shape[-1]].copy_(img)
        return ImageList(batched.contiguous(), image_sizes)
