"""`Instances`: per-image fields of equal length (Detectron2's result and target container)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import torch


class Instances:
    """A set of N instances of one image: every field has length N.

    Fields are set as attributes (`inst.pred_boxes = Boxes(...)`) and can be tensors, lists or
    any object with `__len__` and `__getitem__` (`Boxes`, `BitMasks`, `PolygonMasks`). Detectron2's
    names are used throughout: `pred_boxes`, `scores`, `pred_classes`, `pred_masks` for results;
    `gt_boxes`, `gt_classes`, `gt_masks` for targets; `proposal_boxes`, `objectness_logits`.

    Args:
        image_size: (height, width) of the image the instances belong to.
    """

    def __init__(self, image_size: tuple[int, int], **fields: Any):
        if torch.jit.is_tracing():  # ONNX export: traced sizes stay sizes of the input
            self._image_size = (image_size[0], image_size[1])
        else:
            self._image_size = (int(image_size[0]), int(image_size[1]))
        self._fields: dict[str, Any] = {}
        for name, value in fields.items():
            self.set(name, value)

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width)."""
        return self._image_size

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_"):
            super().__setattr__(name, value)
        else:
            self.set(name, value)

    def __getattr__(self, name: str) -> Any:
        # Reached only for names not in __dict__; while unpickling `_fields` is not there yet,
        # so look it up without recursing.
        fields = self.__dict__.get("_fields")
        if fields is None or name not in fields:
            raise AttributeError(f"Instances has no field {name!r}; fields: {list(fields or [])}")
        return fields[name]

    def set(self, name: str, value: Any) -> None:
        data_len = len(value)
        if self._fields and data_len != len(self):
            raise ValueError(f"field {name!r} has length {data_len}, the other fields {len(self)}")
        self._fields[name] = value

    def has(self, name: str) -> bool:
        return name in self._fields

    def remove(self, name: str) -> None:
        del self._fields[name]

    def get(self, name: str) -> Any:
        return self._fields[name]

    def get_fields(self) -> dict[str, Any]:
        return self._fields

    def to(self, *args: Any, **kwargs: Any) -> Instances:
        """A copy with every field that has `.to` moved (device and/or dtype)."""
        out = Instances(self._image_size)
        for name, value in self._fields.items():
            if hasattr(value, "to"):
                value = value.to(*args, **kwargs)
            out.set(name, value)
        return out

    def __getitem__(self, item: Any) -> Instances:
        """Select by an int, a slice, a bool mask or an index tensor."""
        if isinstance(item, int):
            if item >= len(self) or item < -len(self):
                raise IndexError("Instances index out of range")
            item = slice(item, None, len(self)) if item != -1 else slice(item, None)
        out = Instances(self._image_size)
        for name, value in self._fields.items():
            if isinstance(value, list):
                if isinstance(item, torch.Tensor):
                    idx = item.nonzero().flatten() if item.dtype == torch.bool else item
                    out.set(name, [value[int(i)] for i in idx])
                else:
                    out.set(name, value[item])
            else:
                out.set(name, value[item])
        return out

    def __len__(self) -> int:
        for value in self._fields.values():
            return len(value)
        return 0

    def __iter__(self) -> Iterator:
        raise NotImplementedError("Instances cannot be iterated; index it instead")

    @staticmethod
    def cat(instance_lists: list[Instances]) -> Instances:
        """Concatenate instances of the same image size field by field."""
        if len(instance_lists) == 0:
            raise ValueError("Instances.cat needs at least one Instances")
        if len(instance_lists) == 1:
            return instance_lists[0]
        image_size = instance_lists[0].image_size
        for inst in instance_lists[1:]:
            if inst.image_size != image_size:
                raise ValueError("Instances.cat: image sizes differ")
        out = Instances(image_size)
        for name in instance_lists[0]._fields:
            values = [inst.get(name) for inst in instance_lists]
            first = values[0]
            merged: Any
            if isinstance(first, torch.Tensor):
                merged = torch.cat(values, dim=0)
            elif isinstance(first, list):
                merged = list(itertools.chain(*values))
            elif hasattr(type(first), "cat"):
                merged = type(first).cat(values)
            else:
                raise ValueError(f"field {name!r} of type {type(first)} cannot be concatenated")
            out.set(name, merged)
        return out

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}: {v}" for k, v in self._fields.items())
        return (
            f"Instances(num_instances={len(self)}, image_height={self._image_size[0]}, "
            f"image_width={self._image_size[1]}, fields=[{fields}])"
        )
