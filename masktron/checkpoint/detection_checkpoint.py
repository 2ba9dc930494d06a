"""`DetectionCheckpointer`: Detectron2's checkpoint formats on top of `Checkpointer`.

Formats, by file:

- `.pkl` with "model" and "__author__" (Detectron2 model zoo): names load exactly, unless the file
  says `"matching_heuristics": True` (e.g. converted torchvision weights).
- other `.pkl` (Caffe2 / Detectron1, e.g. `detectron2://ImageNetPretrained/MSRA/R-50.pkl`, or a
  Detectron1 `{"blobs": ...}` file): Caffe2 names converted (`c2_names`), `*_momentum` dropped, then
  matched by longest suffix.
- `.pyth` (pycls): "model_state" matched by longest suffix.
- anything else (`.pth`, `.pt`): a Detectron2-trained `{"model": ..., "optimizer": ...,
  "iteration": ...}` or a flat state dict. Names load exactly, as in Detectron2, unless the path
  ends with `?matching_heuristics=True` (then longest-suffix matching). A torchvision ResNet state
  dict is recognised, converted and matched by suffix (a masktron convenience).

Shapes that differ are skipped with a warning; missing and unused names are reported grouped by
prefix. All files are read with restricted unpicklers (`safe_pickle`).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlparse

from masktron.checkpoint.c2_names import convert_c2_names
from masktron.checkpoint.checkpointer import Checkpointer
from masktron.checkpoint.loading import load_aligned, load_exact, to_tensors
from masktron.checkpoint.matching import IncompatibleKeys
from masktron.checkpoint.safe_pickle import CheckpointError, load_pickle, load_torch
from masktron.checkpoint.torchvision_names import (
    convert_torchvision_resnet_names,
    is_torchvision_resnet,
)

__all__ = ["DetectionCheckpointer"]


class DetectionCheckpointer(Checkpointer):
    """`Checkpointer` that also reads Detectron2 model-zoo, Caffe2/Detectron1, pycls and
    torchvision files, matching names by Detectron2's heuristics.

    Args:
        model: the model (DDP/DataParallel wrappers are unwrapped).
        save_dir: folder for saved checkpoints ("" disables saving).
        save_to_disk: whether `save` writes; None (default) means "only on rank 0".
        **checkpointables: other objects with `state_dict()`/`load_state_dict()`.

    Example:
        >>> DetectionCheckpointer(model).load("detectron2://ImageNetPretrained/MSRA/R-50.pkl")
    """

    def load(self, path: str, checkpointables: list[str] | None = None) -> dict[str, Any]:
        """Load as `Checkpointer.load`; `path?matching_heuristics=True` (Detectron2's query)
        matches names by longest suffix instead of exactly.

        Raises:
            ValueError: any other query in the path.
        """
        self._heuristics_query = False
        if path and "?" in path:
            parsed = urlparse(path)
            queries = parse_qs(parsed.query)
            self._heuristics_query = queries.pop("matching_heuristics", ["False"]) == ["True"]
            if queries:
                raise ValueError(f"unsupported query {sorted(queries)} in checkpoint path {path}")
            path = parsed._replace(query="").geturl()
        try:
            return super().load(path, checkpointables)
        finally:
            self._heuristics_query = False

    def _load_file(self, path: str) -> dict[str, Any]:
        if path.endswith(".pkl"):
            return self._load_pkl(path)
        if path.endswith(".pyth"):
            data = load_torch(path)
            if not isinstance(data, dict) or "model_state" not in data:
                raise CheckpointError(f"{path}: a pycls .pyth file must contain 'model_state'")
            state = data["model_state"]
            state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
            return {"model": state, "__author__": "pycls", "matching_heuristics": True}
        loaded = load_torch(path)
        if not isinstance(loaded, dict):
            raise CheckpointError(f"{path}: expected a dict, found a {type(loaded).__name__}")
        if "model" not in loaded:
            loaded = {"model": loaded}
        if getattr(self, "_heuristics_query", False) or is_torchvision_resnet(loaded["model"]):
            loaded["matching_heuristics"] = True
        return loaded

    def _load_pkl(self, path: str) -> dict[str, Any]:
        data = load_pickle(path)
        if not isinstance(data, dict):
            raise CheckpointError(f"{path}: expected a dict, found a {type(data).__name__}")
        if "model" in data and "__author__" in data:
            self.logger.info("Reading a file from '%s'", data["__author__"])
            if getattr(self, "_heuristics_query", False):
                data["matching_heuristics"] = True
            return data
        # A Caffe2 / Detectron1 file: detection models keep their weights under "blobs".
        blobs = data.get("blobs", data)
        if not isinstance(blobs, dict):
            raise CheckpointError(f"{path}: 'blobs' is a {type(blobs).__name__}, not a dict")
        blobs = {k: v for k, v in blobs.items() if not k.endswith("_momentum")}
        return {"model": blobs, "__author__": "Caffe2", "matching_heuristics": True}

    def _load_model(self, checkpoint: dict[str, Any], path: str) -> IncompatibleKeys:
        state = to_tensors(checkpoint.pop("model"), path)
        if not checkpoint.get("matching_heuristics", False):
            return load_exact(self.model, state)
        original_names = None
        if checkpoint.get("__author__") == "Caffe2":
            try:
                state, original_names = convert_c2_names(state)
            except ValueError as e:
                raise CheckpointError(f"{path}: {e}") from e
        elif is_torchvision_resnet(state):
            self.logger.info("%s: torchvision ResNet names; converting", path)
            state, original_names = convert_torchvision_resnet_names(state)
        try:
            return load_aligned(self.model, state, original_names)
        except ValueError as e:
            raise CheckpointError(f"{path}: {e}") from e
