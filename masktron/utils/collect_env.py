"""`collect_env_info()`: the software and hardware a run used, as a text table (Detectron2's
`detectron2.utils.collect_env`), for bug reports and logs."""

from __future__ import annotations

import importlib.metadata
import platform
import sys

import numpy as np
import torch

__all__ = ["collect_env_info"]

_PACKAGES = ("masktron", "torchvision", "omegaconf", "pycocotools", "hotcoco", "Pillow")


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def collect_env_info() -> str:
    """Platform, Python, PyTorch, CUDA/GPUs and the versions of masktron's dependencies."""
    rows = [
        ("sys.platform", sys.platform),
        ("platform", platform.platform()),
        ("Python", sys.version.replace("\n", " ")),
        ("numpy", np.__version__),
        ("PyTorch", f"{torch.__version__} @{torch.__file__.rsplit('/', 2)[0]}"),
        ("PyTorch debug build", str(torch.version.debug)),
    ]
    rows += [(name, _version(name)) for name in _PACKAGES]
    cuda = torch.cuda.is_available()
    rows.append(("GPU available", str(cuda)))
    if cuda:
        rows.append(("CUDA (PyTorch)", str(torch.version.cuda)))
        for k in range(torch.cuda.device_count()):
            rows.append((f"GPU {k}", torch.cuda.get_device_name(k)))
    rows.append(("CPU threads (torch)", str(torch.get_num_threads())))
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)
