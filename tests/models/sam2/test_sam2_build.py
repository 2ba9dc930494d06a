"""SAM 2 builders and checkpoint loading: every released variant has Meta's tensor names and
shapes, the variant is read from config names and from checkpoints, loading is strict and safe."""

from __future__ import annotations

import functools
import pickle

import pytest
import torch
from sam2_fixtures_util import VARIANTS, sam2_fixture_checkpoint, sam2_shapes

from masktron.model_zoo.sam2_checkpoints import SAM2_CHECKPOINTS, resolve_sam2_checkpoint
from masktron.models.sam2 import (
    Sam2CheckpointError,
    build_sam2,
    build_sam2_hiera_tiny,
    build_sam2_model,
    build_sam2_video_model,
    infer_sam2_variant,
    variant_from_config,
)
from masktron.sam2.build_sam import build_sam2 as compat_build_sam2


@functools.cache
def _meta_model(variant: str) -> torch.nn.Module:
    with torch.device("meta"):  # shapes only: no memory, no initialisation cost
        return build_sam2_model(variant)


@pytest.mark.parametrize("variant", VARIANTS)
def test_state_dict_names_and_shapes_equal_meta(variant):
    ours = {k: tuple(v.shape) for k, v in _meta_model(variant).state_dict().items()}
    assert ours == sam2_shapes(variant)


def test_image_size_sets_the_prompt_grid_and_keeps_the_weights():
    """Meta's `model.image_size`: another input size, the same tensors (loadable as released)."""
    with torch.device("meta"):
        model = build_sam2_model("sam2.1_hiera_t", image_size=512)
    assert model.image_size == 512 and model.sam_image_embedding_size == 32
    encoder = model.sam_prompt_encoder
    assert tuple(encoder.image_embedding_size) == (32, 32)
    assert tuple(encoder.input_image_size) == (512, 512)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert shapes == sam2_shapes("sam2.1_hiera_t")
    with pytest.raises(ValueError, match="image_size must be a positive multiple of 32"):
        build_sam2_model("sam2.1_hiera_t", image_size=500)


@pytest.mark.parametrize("variant", VARIANTS)
def test_variant_read_from_checkpoint_shapes(variant):
    fake = {k: torch.empty(s, device="meta") for k, s in sam2_shapes(variant).items()}
    assert infer_sam2_variant(fake) == variant
    assert infer_sam2_variant(_meta_model(variant).state_dict()) == variant


def test_variant_from_meta_config_names():
    assert variant_from_config("configs/sam2.1/sam2.1_hiera_t.yaml") == "sam2.1_hiera_t"
    assert variant_from_config("sam2.1_hiera_b+.yaml") == "sam2.1_hiera_b+"
    assert variant_from_config("sam2_hiera_l.yaml") == "sam2_hiera_l"
    assert variant_from_config("sam2_hiera_s") == "sam2_hiera_s"
    with pytest.raises(ValueError, match="unknown SAM 2 config 'sam3_hiera_t.yaml'"):
        variant_from_config("sam3_hiera_t.yaml")


def test_sam20_and_sam21_settings_differ_as_meta_configs():
    new, old = _meta_model("sam2.1_hiera_t"), _meta_model("sam2_hiera_t")
    assert new.use_signed_tpos_enc_to_obj_ptrs and new.add_tpos_enc_to_obj_ptrs
    assert new.no_obj_embed_spatial is not None
    assert not old.add_tpos_enc_to_obj_ptrs and old.no_obj_embed_spatial is None


def test_build_reads_variant_from_checkpoint_and_loads_strictly():
    ckpt = sam2_fixture_checkpoint("sam2.1_hiera_t")
    model = build_sam2(ckpt_path=ckpt)
    state = torch.load(ckpt, weights_only=True)["model"]
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, state[name]), name
    assert not model.training and model.device == torch.device("cpu")
    assert model.sam_mask_decoder.dynamic_multimask_via_stability
    assert not model.binarize_mask_from_pts_for_mem_enc and model.fill_hole_area == 0
    assert all(t.dtype == torch.float32 for t in model.state_dict().values())
    with torch.device("meta"):
        video = build_sam2_video_model("configs/sam2.1/sam2.1_hiera_t.yaml", device="meta")
    assert video.binarize_mask_from_pts_for_mem_enc and video.fill_hole_area == 8
    assert compat_build_sam2 is build_sam2


def test_sam20_checkpoint_builds_sam20(tmp_path):
    # a SAM 2.0 file has SAM 2.1's tensors less the three 2.1 added (same shapes otherwise)
    state = torch.load(sam2_fixture_checkpoint("sam2.1_hiera_t"), weights_only=True)["model"]
    old = {k: v for k, v in state.items() if k in sam2_shapes("sam2_hiera_t")}
    assert len(old) == len(state) - 3
    path = tmp_path / "sam2_hiera_tiny.pt"
    torch.save({"model": old}, path)
    model = build_sam2_hiera_tiny(path)
    assert model.no_obj_embed_spatial is None and not model.add_tpos_enc_to_obj_ptrs
    assert build_sam2(ckpt_path=path).use_signed_tpos_enc_to_obj_ptrs is False


def test_wrong_variant_and_bad_files_are_clear_errors(tmp_path):
    ckpt = sam2_fixture_checkpoint("sam2.1_hiera_t")
    with pytest.raises(Sam2CheckpointError, match=r"a sam2\.1_hiera_t checkpoint, but the model"):
        build_sam2("sam2.1_hiera_s.yaml", ckpt)
    state = torch.load(ckpt, weights_only=True)["model"]
    del state["no_mem_embed"]
    partial = tmp_path / "partial.pt"
    torch.save({"model": state}, partial)
    with pytest.raises(Sam2CheckpointError, match=r"partial\.pt.*missing tensor.*no_mem_embed"):
        build_sam2("sam2.1_hiera_t.yaml", partial)
    evil = tmp_path / "evil.pt"
    with open(evil, "wb") as f:
        pickle.dump({"model": functools.partial(print, "pwned")}, f)
    with pytest.raises(Sam2CheckpointError, match="evil.pt"):
        build_sam2(ckpt_path=evil)
    with pytest.raises(ValueError, match="needs a config_file, a variant or a ckpt_path"):
        build_sam2()
    with pytest.raises(ValueError, match="without hydra"):
        build_sam2("sam2.1_hiera_t.yaml", hydra_overrides_extra=["++model.x=1"])


def test_zoo_has_meta_urls_of_all_variants():
    assert set(SAM2_CHECKPOINTS) == set(VARIANTS)
    url, variant = resolve_sam2_checkpoint("sam2.1_hiera_base_plus.pt")
    assert variant == "sam2.1_hiera_b+"
    assert (
        url == "https://dl.fbaipublicfiles.com/segment_anything_2/092824/sam2.1_hiera_base_plus.pt"
    )
    assert resolve_sam2_checkpoint("sam2_hiera_l")[0].endswith("/072824/sam2_hiera_large.pt")
    assert resolve_sam2_checkpoint("my.pt") == ("my.pt", None)
