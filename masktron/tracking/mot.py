"""MOTChallenge text files and the CLEAR-MOT / identity scores of a tracker against ground truth.

A MOTChallenge line is `frame,id,bb_left,bb_top,bb_width,bb_height,conf,x,y,z` (frames from 1,
boxes in pixels, XYWH; the last three are -1 for 2-D tracking).

Scores (`mot_metrics`), with a match meaning box IoU >= `iou_threshold`:
- MOTA = 1 - (FN + FP + IDSW) / GT  (Bernardin & Stiefelhagen 2008, "CLEAR MOT"). Per frame, a
  ground-truth object keeps the track it was matched to on an earlier frame while they still
  match; the others are assigned by Hungarian matching on IoU. IDSW counts the matches whose
  track differs from the one the object was last matched to (py-motmetrics' `num_switches`).
- IDF1 = 2 IDTP / (GT + predictions)  (Ristani et al. 2016): ground-truth ids and track ids are
  paired one to one for the whole video so that the number of frames in which the pairs match
  (IDTP) is largest; IDP = IDTP / predictions, IDR = IDTP / GT.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

__all__ = ["mot_metrics", "read_mot_txt", "write_mot_txt"]

# frame -> [(id, (x0, y0, x1, y1)), ...]
Tracks = Mapping[int, Sequence[tuple[int, Sequence[float]]]]


def write_mot_txt(path: str | os.PathLike, rows: Iterable[Sequence[float]]) -> None:
    """Write (frame, id, x0, y0, x1, y1, score) rows (XYXY pixels) as a MOTChallenge file."""
    from masktron.utils.file_io import atomic_open

    lines = []
    for frame, track_id, x0, y0, x1, y1, score in rows:
        lines.append(
            f"{int(frame)},{int(track_id)},{x0:.2f},{y0:.2f},{x1 - x0:.2f},{y1 - y0:.2f},"
            f"{score:.4f},-1,-1,-1\n"
        )
    with atomic_open(path, "w") as f:
        f.writelines(lines)


def read_mot_txt(path: str | os.PathLike) -> dict[int, list[tuple[int, list[float]]]]:
    """A MOTChallenge file as {frame: [(id, [x0, y0, x1, y1]), ...]} (XYXY pixels).

    Ground-truth files' rows whose `conf` column (the "consider" flag) is 0 are left out.
    """
    out: dict[int, list[tuple[int, list[float]]]] = {}
    with open(path) as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            parts = line.replace(" ", "").strip().split(",")
            try:
                frame, track_id = int(float(parts[0])), int(float(parts[1]))
                left, top, width, height, conf = (float(v) for v in parts[2:7])
            except (ValueError, IndexError):
                raise ValueError(
                    f"{path}:{number}: expected 'frame,id,left,top,width,height,conf,...', "
                    f"got {line.strip()!r}"
                ) from None
            if conf == 0:
                continue
            out.setdefault(frame, []).append((track_id, [left, top, left + width, top + height]))
    return out


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, 4) x (M, 4) XYXY -> (N, M) IoU."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    lt = np.maximum(a[:, None, :2], b[None, :, :2])  # (N, M, 2)
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(axis=2)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def _frame(tracks: Tracks, frame: int) -> tuple[list[int], np.ndarray]:
    rows = tracks.get(frame, [])
    ids = [int(i) for i, _ in rows]
    if len(set(ids)) != len(ids):
        raise ValueError(f"frame {frame}: an id appears twice")
    boxes = np.array([list(b) for _, b in rows], dtype=np.float64).reshape(-1, 4)
    return ids, boxes


def mot_metrics(gt: Tracks, pred: Tracks, iou_threshold: float = 0.5) -> dict[str, float]:
    """CLEAR-MOT and identity scores of `pred` against `gt` (see the module docstring).

    Args:
        gt: {frame: [(object id, XYXY box), ...]}, e.g. from `read_mot_txt`.
        pred: the tracker's output in the same form.
        iou_threshold: the least IoU for a prediction to match an object.

    Returns:
        MOTA, IDF1, IDP, IDR, and the counts GT, predictions, TP, FP, FN, IDSW, IDTP.
    """
    last_match: dict[int, int] = {}  # object id -> track id it was last matched to
    tp = fp = fn = switches = 0
    overlap: dict[tuple[int, int], int] = {}  # (object, track) -> frames where they match
    n_gt = n_pred = 0
    for frame in sorted(set(gt) | set(pred)):
        g_ids, g_boxes = _frame(gt, frame)
        p_ids, p_boxes = _frame(pred, frame)
        n_gt, n_pred = n_gt + len(g_ids), n_pred + len(p_ids)
        iou = _iou(g_boxes, p_boxes)  # (G, P)
        for gi, pi in zip(*np.nonzero(iou >= iou_threshold)):
            key = (g_ids[gi], p_ids[pi])
            overlap[key] = overlap.get(key, 0) + 1
        pairs: dict[int, int] = {}  # gt index -> pred index
        for gi, g in enumerate(g_ids):  # keep last frames' correspondences that still match
            if g in last_match and last_match[g] in p_ids:
                pi = p_ids.index(last_match[g])
                if iou[gi, pi] >= iou_threshold and pi not in pairs.values():
                    pairs[gi] = pi
        free_g = [i for i in range(len(g_ids)) if i not in pairs]
        free_p = [j for j in range(len(p_ids)) if j not in pairs.values()]
        if free_g and free_p:
            sub = iou[np.ix_(free_g, free_p)]
            cost = np.where(sub >= iou_threshold, 1.0 - sub, 1e6)
            for r, c in zip(*linear_sum_assignment(cost)):
                if sub[r, c] >= iou_threshold:
                    gi, pi = free_g[r], free_p[c]
                    g = g_ids[gi]
                    switches += int(g in last_match and last_match[g] != p_ids[pi])
                    pairs[gi] = pi
        for gi, pi in pairs.items():
            last_match[g_ids[gi]] = p_ids[pi]
        tp += len(pairs)
        fn += len(g_ids) - len(pairs)
        fp += len(p_ids) - len(pairs)
    idtp = _identity_true_positives(overlap)
    return {
        "MOTA": 1.0 - (fn + fp + switches) / n_gt if n_gt else float("nan"),
        "IDF1": 2 * idtp / (n_gt + n_pred) if n_gt + n_pred else float("nan"),
        "IDP": idtp / n_pred if n_pred else float("nan"),
        "IDR": idtp / n_gt if n_gt else float("nan"),
        "GT": n_gt,
        "predictions": n_pred,
        "TP": tp,
        "FP": fp,
        "FN": fn,
        "IDSW": switches,
        "IDTP": idtp,
    }


def _identity_true_positives(overlap: dict[tuple[int, int], int]) -> int:
    """The most matched frames over one-to-one pairings of object ids with track ids."""
    if not overlap:
        return 0
    objects = sorted({g for g, _ in overlap})
    tracks = sorted({p for _, p in overlap})
    counts = np.zeros((len(objects), len(tracks)))
    for (g, p), n in overlap.items():
        counts[objects.index(g), tracks.index(p)] = n
    rows, cols = linear_sum_assignment(counts, maximize=True)
    return int(counts[rows, cols].sum())
