"""Meta's `sam2` API: port code by changing `sam2` to `masktron.sam2` in its imports."""

from masktron.sam2.build_sam import build_sam2, build_sam2_video_model

__all__ = ["build_sam2", "build_sam2_video_model"]
