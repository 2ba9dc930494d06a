"""Assigning predictions (anchors, proposals) to ground-truth boxes by IoU, and sampling them."""

from __future__ import annotations

import torch


class Matcher:
    """Match each prediction to the ground truth it overlaps most, and label the match by IoU.

    With thresholds [t0, t1] and labels [l0, l1, l2], a best IoU in [-inf, t0) gets l0,
    [t0, t1) gets l1 and [t1, inf) gets l2 (labels: 0 negative, 1 positive, -1 ignored).

    Args:
        thresholds: increasing IoU thresholds.
        labels: one more label than thresholds.
        allow_low_quality_matches: also mark positive, for each ground truth, the predictions
            with the highest IoU to it (ties included), so every object gets a match.
    """

    def __init__(
        self, thresholds: list[float], labels: list[int], allow_low_quality_matches: bool = False
    ):
        if len(labels) != len(thresholds) + 1:
            raise ValueError(f"Matcher: {len(labels)} labels for {len(thresholds)} thresholds")
        if any(low > high for low, high in zip(thresholds[:-1], thresholds[1:])):
            raise ValueError(f"Matcher thresholds must increase, got {thresholds}")
        if any(label not in (-1, 0, 1) for label in labels):
            raise ValueError(f"Matcher labels must be -1, 0 or 1, got {labels}")
        self.thresholds = [-float("inf"), *thresholds, float("inf")]
        self.labels = list(labels)
        self.allow_low_quality_matches = allow_low_quality_matches

    def __call__(self, quality: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Args: quality (M ground truths, N predictions) IoU matrix.

        Returns:
            matches (N,) int64 index of the matched ground truth; labels (N,) int8.
        """
        if quality.numel() == 0:
            n = quality.shape[1]
            matches = quality.new_zeros(n, dtype=torch.int64)
            labels = quality.new_full((n,), self.labels[0], dtype=torch.int8)
            return matches, labels
        best, matches = quality.max(dim=0)
        labels = matches.new_full(matches.size(), 1, dtype=torch.int8)
        for label, low, high in zip(self.labels, self.thresholds[:-1], self.thresholds[1:]):
            labels[(best >= low) & (best < high)] = label
        if self.allow_low_quality_matches:
            best_per_gt, _ = quality.max(dim=1)
            _, pred_idx = torch.nonzero(quality == best_per_gt[:, None], as_tuple=True)
            labels[pred_idx] = 1
        return matches, labels


def subsample_labels(
    labels: torch.Tensor, num_samples: int, positive_fraction: float, bg_label: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Randomly pick at most `num_samples` indices, at most `positive_fraction` of them positive.

    Args:
        labels: (N,) with -1 ignored, `bg_label` negative, anything else positive.

    Returns:
        indices of the sampled positives and of the sampled negatives.
    """
    positive = torch.nonzero((labels != -1) & (labels != bg_label)).squeeze(1)
    negative = torch.nonzero(labels == bg_label).squeeze(1)
    num_pos = min(positive.numel(), int(num_samples * positive_fraction))
    num_neg = min(negative.numel(), num_samples - num_pos)
    perm_pos = torch.randperm(positive.numel(), device=positive.device)[:num_pos]
    perm_neg = torch.randperm(negative.numel(), device=negative.device)[:num_neg]
    return positive[perm_pos], negative[perm_neg]
