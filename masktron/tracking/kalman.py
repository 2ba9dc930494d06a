"""A constant-velocity Kalman filter on boxes, the motion model of SORT, DeepSORT and ByteTrack.

The state is (cx, cy, a, h, vx, vy, va, vh): box centre, aspect ratio w/h, height and their
velocities per frame; a measurement is (cx, cy, a, h). Noise scales with the box height so that a
large, near object may move more pixels per frame than a small, far one (the weights 1/20 and
1/160 are DeepSORT's, https://arxiv.org/abs/1703.07402, kept by ByteTrack).
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

__all__ = ["KalmanFilterXYAH", "xyah_to_xyxy", "xyxy_to_xyah"]

_STD_POSITION = 1.0 / 20
_STD_VELOCITY = 1.0 / 160


def xyxy_to_xyah(box: np.ndarray) -> np.ndarray:
    """(4,) XYXY pixels -> (4,) centre x, centre y, aspect w/h, height."""
    x0, y0, x1, y1 = (float(v) for v in box)
    w, h = x1 - x0, max(y1 - y0, 1e-6)
    return np.array([x0 + w / 2, y0 + h / 2, w / h, h], dtype=np.float64)


def xyah_to_xyxy(xyah: np.ndarray) -> np.ndarray:
    """(4,) centre x, centre y, aspect w/h, height -> (4,) XYXY pixels."""
    cx, cy, a, h = (float(v) for v in xyah[:4])
    w = a * h
    return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dtype=np.float64)


class KalmanFilterXYAH:
    """Predict and correct one box track at a time (the matrices are shared by all tracks)."""

    def __init__(self) -> None:
        self._motion = np.eye(8)  # x_{t+1} = x_t + v_t (one frame per step)
        self._motion[:4, 4:] = np.eye(4)
        self._observe = np.eye(4, 8)  # only the box is measured, not its velocity

    def initiate(self, measurement: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A new track from one (4,) xyah measurement: (8,) mean, zero velocity; (8, 8) cov."""
        h = measurement[3]
        mean = np.concatenate([measurement, np.zeros(4)])
        std = np.array(
            [
                2 * _STD_POSITION * h,
                2 * _STD_POSITION * h,
                1e-2,
                2 * _STD_POSITION * h,
                10 * _STD_VELOCITY * h,
                10 * _STD_VELOCITY * h,
                1e-5,
                10 * _STD_VELOCITY * h,
            ]
        )
        return mean, np.diag(np.square(std))

    def predict(self, mean: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One frame ahead: (8,) mean and (8, 8) covariance."""
        h = mean[3]
        std = np.array(
            [_STD_POSITION * h, _STD_POSITION * h, 1e-2, _STD_POSITION * h]
            + [_STD_VELOCITY * h, _STD_VELOCITY * h, 1e-5, _STD_VELOCITY * h]
        )
        mean = self._motion @ mean
        cov = self._motion @ cov @ self._motion.T + np.diag(np.square(std))
        return mean, cov

    def update(
        self, mean: np.ndarray, cov: np.ndarray, measurement: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Correct the prediction with a (4,) xyah measurement."""
        h = mean[3]
        noise = np.diag(np.square([_STD_POSITION * h, _STD_POSITION * h, 1e-1, _STD_POSITION * h]))
        projected_mean = self._observe @ mean  # (4,)
        projected_cov = self._observe @ cov @ self._observe.T + noise  # (4, 4)
        factor = scipy.linalg.cho_factor(projected_cov, lower=True, check_finite=False)
        # gain = cov H^T S^-1, solved rather than inverted: (4, 8) -> transposed (8, 4)
        gain = scipy.linalg.cho_solve(factor, (cov @ self._observe.T).T, check_finite=False).T
        mean = mean + gain @ (measurement - projected_mean)
        cov = cov - gain @ projected_cov @ gain.T
        return mean, cov
