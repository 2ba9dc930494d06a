"""Optimizers as LazyConfigs (Detectron2's `common/optim.py`).

Set `optimizer.params.model = model` before `instantiate(optimizer)`: the parameter groups are
made from the built model (norm layers without weight decay).
"""

import torch

from masktron.config import LazyCall as L
from masktron.solver import get_default_optimizer_params

SGD = L(torch.optim.SGD)(
    params=L(get_default_optimizer_params)(weight_decay_norm=0.0),
    lr=0.02,
    momentum=0.9,
    weight_decay=1e-4,
)

AdamW = L(torch.optim.AdamW)(
    params=L(get_default_optimizer_params)(
        base_lr="${..lr}",  # the groups' lr follows optimizer.lr
        weight_decay_norm=0.0,
    ),
    lr=1e-4,
    betas=(0.9, 0.999),
    weight_decay=0.1,
)
