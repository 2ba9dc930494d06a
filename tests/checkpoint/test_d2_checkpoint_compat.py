"""Detectron2's name matching: exact for plain `.pth` files, longest-suffix only when the path
asks for it with `?matching_heuristics=True`, and `align_and_update_state_dicts`."""

import pytest
import torch
from torch import nn

from masktron.checkpoint import DetectionCheckpointer
from masktron.checkpoint.c2_model_loading import align_and_update_state_dicts


def nested_model():
    model = nn.Module()
    model.block1 = nn.Module()
    model.block1.layer1 = nn.Linear(2, 3)
    model.layer2 = nn.Linear(3, 2)
    return model


def flat_state():
    return {
        "layer1.weight": torch.rand(3, 2),
        "layer1.bias": torch.rand(3),
        "layer2.weight": torch.rand(2, 3),
        "layer2.bias": torch.rand(2),
    }


def test_plain_pth_matches_exactly_unless_asked(tmp_path):
    state = flat_state()
    path = tmp_path / "checkpoint.pth"
    torch.save({"model": state}, path)
    model = nested_model()
    with torch.no_grad():
        model.block1.layer1.weight.fill_(1)
    DetectionCheckpointer(model).load(str(path))
    assert torch.equal(model.block1.layer1.weight, torch.ones(3, 2))  # no suffix match
    assert torch.equal(model.layer2.weight, state["layer2.weight"])  # exact names load
    DetectionCheckpointer(model).load(f"{path}?matching_heuristics=True")
    assert torch.equal(model.block1.layer1.weight, state["layer1.weight"])
    with pytest.raises(ValueError, match="unsupported query"):
        DetectionCheckpointer(model).load(f"{path}?other=1")


def test_align_and_update_state_dicts():
    model = nn.DataParallel(nested_model())
    state = flat_state()
    aligned = align_and_update_state_dicts(model.state_dict(), state, c2_conversion=False)
    assert set(aligned) == set(model.state_dict())
    model.load_state_dict(aligned)
    assert torch.equal(model.module.block1.layer1.bias, state["layer1.bias"])
