"""Loading SAM checkpoints: strict, safe, and every failure named by file and tensor."""

from __future__ import annotations

import pickle

import pytest
import torch
from fixtures_util_sam import tiny_sam

from masktron.models.sam import SamCheckpointError, load_sam_checkpoint, sam_model_registry


@pytest.fixture(scope="module")
def tiny_state():
    return tiny_sam(0).state_dict()


def _save(tmp_path, obj, name="ckpt.pth"):
    path = tmp_path / name
    torch.save(obj, path)
    return path


def test_round_trip_loads_every_tensor(tmp_path, tiny_state):
    path = _save(tmp_path, tiny_state)
    model = tiny_sam(1)
    load_sam_checkpoint(model, path)
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, tiny_state[k], rtol=0, atol=0)


def test_wrapped_state_dict_is_unwrapped(tmp_path, tiny_state):
    path = _save(tmp_path, {"model": tiny_state, "epoch": 3})
    model = tiny_sam(1)
    load_sam_checkpoint(model, path)
    torch.testing.assert_close(
        model.mask_decoder.iou_token.weight, tiny_state["mask_decoder.iou_token.weight"]
    )


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        load_sam_checkpoint(tiny_sam(), tmp_path / "nope.pth")


def test_corrupt_and_truncated_files(tmp_path, tiny_state):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"\x00\x01not a checkpoint" * 100)
    with pytest.raises(SamCheckpointError, match="junk.pth.*not a readable .*PyTorch checkpoint"):
        load_sam_checkpoint(tiny_sam(), junk)
    good = _save(tmp_path, tiny_state, "good.pth").read_bytes()
    cut = tmp_path / "cut.pth"
    cut.write_bytes(good[: len(good) // 2])
    with pytest.raises(SamCheckpointError, match="cut.pth"):
        load_sam_checkpoint(tiny_sam(), cut)


def test_pickle_with_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("owned",))

    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"w": Evil()}, f, protocol=2)
    with pytest.raises(SamCheckpointError, match="evil.pth"):
        load_sam_checkpoint(tiny_sam(), path)


def test_not_a_state_dict(tmp_path):
    with pytest.raises(SamCheckpointError, match="expected a state dict.*list"):
        load_sam_checkpoint(tiny_sam(), _save(tmp_path, [torch.zeros(2)]))
    with pytest.raises(SamCheckpointError, match="'step' is a int, not a tensor"):
        load_sam_checkpoint(tiny_sam(), _save(tmp_path, {"a": torch.zeros(1), "step": 3}))


def test_missing_and_unexpected_keys_are_named(tmp_path, tiny_state):
    state = dict(tiny_state)
    del state["mask_decoder.iou_token.weight"]
    state["extra.weight"] = torch.zeros(3)
    with pytest.raises(SamCheckpointError) as err:
        load_sam_checkpoint(tiny_sam(), _save(tmp_path, state))
    message = str(err.value)
    assert "ckpt.pth" in message
    assert "1 missing tensor(s): mask_decoder.iou_token.weight" in message
    assert "1 unexpected tensor(s): extra.weight" in message


def test_wrong_shape_is_named_with_both_shapes(tmp_path, tiny_state):
    state = dict(tiny_state)
    state["mask_decoder.iou_token.weight"] = torch.zeros(1, 128)
    with pytest.raises(
        SamCheckpointError,
        match=r"'mask_decoder.iou_token.weight' has shape \(1, 128\), the model expects \(1, 256\)",
    ):
        load_sam_checkpoint(tiny_sam(), _save(tmp_path, state))


def test_wrong_variant_through_registry(tmp_path):
    with torch.device("meta"):
        vit_l_shapes = {k: v.shape for k, v in sam_model_registry["vit_l"]().state_dict().items()}
    path = _save(tmp_path, {k: torch.zeros(s) for k, s in vit_l_shapes.items()}, "sam_vit_l.pth")
    with pytest.raises(
        SamCheckpointError,
        match=r"sam_vit_l.pth: a vit_l checkpoint, but the model is vit_b; build it with "
        r'sam_model_registry\["vit_l"\]',
    ):
        sam_model_registry["vit_b"](checkpoint=path)


def test_shape_mismatch_names_the_variant_it_looks_like(tmp_path, tiny_state):
    state = dict(tiny_state)
    # a tiny model's file whose patch embedding is ViT-H wide
    state["image_encoder.patch_embed.proj.weight"] = torch.zeros(1280, 3, 16, 16)
    with pytest.raises(SamCheckpointError, match="looks like a vit_h checkpoint"):
        load_sam_checkpoint(tiny_sam(), _save(tmp_path, state))
