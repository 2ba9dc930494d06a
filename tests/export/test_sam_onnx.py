"""SAM's prompt encoder + mask decoder exported to ONNX and run by onnxruntime.

The exported graph is fed Meta's own image embeddings of the parity fixtures (stored as float16)
and must give Meta's outputs within ../shared/fixtures/README.md's thresholds for every prompt
case (mask IoU >= 0.99, |d iou| <= 2e-3, low-res logits within 1e-2); the ONNX graph must also
equal the PyTorch module it was traced from, for other point counts and image sizes than the
traced example.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fixtures_util_sam import (
    PROMPT_CASES,
    expected,
    fixture_checkpoint,
    fixture_sam,
    load_rgb,
    mask_iou,
    prompt_kwargs,
    unpack_masks,
)

from masktron.cli.main import main
from masktron.export import ONNX_INPUT_NAMES, SamOnnxModel, export_sam_onnx
from masktron.models.sam.transforms import ResizeLongestSide
from masktron.predictors.amg_utils import calculate_stability_score

ort = pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.slow  # each export traces the decoder: ~20 s


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    path = export_sam_onnx(fixture_sam().cpu(), tmp_path_factory.mktemp("onnx") / "sam.onnx")
    return ort.InferenceSession(str(path))


def onnx_inputs(name: str, case: str) -> dict[str, np.ndarray]:
    """A fixture prompt case in the ONNX interface's form (Meta's documented usage)."""
    h, w = load_rgb(name).shape[:2]
    kwargs = prompt_kwargs(case, w, h)
    points, labels = [], []
    if "point_coords" in kwargs:
        points.append(kwargs["point_coords"])
        labels.append(kwargs["point_labels"])
    if "box" in kwargs:
        points.append(kwargs["box"].reshape(2, 2))  # (4,) -> (2 corners, xy)
        labels.append(np.array([2, 3]))
    else:
        points.append(np.zeros((1, 2)))  # the padding point
        labels.append(np.array([-1]))
    coords = ResizeLongestSide(1024).apply_coords(np.concatenate(points), (h, w))
    mask_input = np.zeros((1, 1, 256, 256), np.float32)
    has_mask = np.zeros(1, np.float32)
    if case == "point_mask":
        ious = expected()[f"{name}/point1/mm1/iou_predictions"]
        best = expected()[f"{name}/point1/mm1/low_res_logits"][np.argmax(ious)]
        mask_input[0, 0] = best
        has_mask[0] = 1.0
    return {
        "image_embeddings": expected()[f"{name}/features"].astype(np.float32),
        "point_coords": coords[None].astype(np.float32),  # (N, 2) -> (1, N, 2)
        "point_labels": np.concatenate(labels)[None].astype(np.float32),
        "mask_input": mask_input,
        "has_mask_input": has_mask,
        "orig_im_size": np.array([h, w], np.float32),
    }


@pytest.mark.parametrize("name", ["astronaut", "coffee"])
@pytest.mark.parametrize("case", PROMPT_CASES)
def test_onnx_graph_matches_meta_reference(session, name, case):
    masks, ious, low_res = session.run(None, onnx_inputs(name, case))
    h, w = load_rgb(name).shape[:2]
    assert masks.shape == (1, 4, h, w) and ious.shape == (1, 4) and low_res.shape[1] == 4
    for mm in (1,) if case == "point_mask" else (0, 1):
        key = f"{name}/{case}/mm{mm}"
        chosen = slice(1, 4) if mm else slice(0, 1)  # token 0: single mask; 1-3: multi-mask
        for ours, ref in zip(masks[0, chosen] > 0, unpack_masks(key)):
            assert mask_iou(ours, ref) >= 0.99, key
        np.testing.assert_allclose(ious[0, chosen], expected()[f"{key}/iou_predictions"], atol=2e-3)
        assert np.abs(low_res[0, chosen] - expected()[f"{key}/low_res_logits"]).max() <= 1e-2


def random_inputs(num_points: int, size: tuple[int, int], seed: int) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 2, (1, num_points), generator=g).float()
    labels[0, -1] = -1.0
    return (
        torch.randn(1, 256, 64, 64, generator=g),
        torch.rand(1, num_points, 2, generator=g) * 1000,
        labels,
        torch.randn(1, 1, 256, 256, generator=g),
        torch.tensor([0.0]),
        torch.tensor(size, dtype=torch.float32),
    )


@pytest.mark.parametrize("num_points, size", [(2, (300, 700)), (24, (1000, 333))])
def test_onnx_graph_equals_pytorch_for_any_point_count_and_size(session, num_points, size):
    inputs = random_inputs(num_points, size, seed=num_points)
    with torch.no_grad():
        expected_out = SamOnnxModel(fixture_sam().cpu())(*inputs)
    got = session.run(None, {k: v.numpy() for k, v in zip(ONNX_INPUT_NAMES, inputs)})
    assert got[0].shape == (1, 4, *size)
    for ours, ref in zip(got, expected_out):
        np.testing.assert_allclose(ours, ref.numpy(), atol=2e-4, rtol=1e-4)


def test_stability_scores_replace_ious():
    inputs = random_inputs(3, (64, 96), seed=1)
    model = SamOnnxModel(fixture_sam().cpu(), use_stability_score=True)
    with torch.no_grad():
        _, scores, low_res = model(*inputs)
    torch.testing.assert_close(scores, calculate_stability_score(low_res, 0.0, 1.0))


def test_cli_exports_single_mask_graph_with_extra_metrics(tmp_path, capsys):
    out = tmp_path / "nested" / "decoder.onnx"
    argv = ["export", "--checkpoint", str(fixture_checkpoint()), "--model", "vit_b"]
    argv += ["--return-single-mask", "--return-extra-metrics", "--out", str(out)]
    assert main(argv) == 0
    assert "wrote" in capsys.readouterr().out and list(out.parent.iterdir()) == [out]
    session = ort.InferenceSession(str(out))
    assert [o.name for o in session.get_outputs()] == [
        "masks",
        "iou_predictions",
        "stability_scores",
        "areas",
        "low_res_masks",
    ]
    full = SamOnnxModel(fixture_sam().cpu())
    for num_points in (2, 3):  # one click + padding: best multi-mask; more: the single mask
        inputs = random_inputs(num_points, (120, 90), seed=num_points)
        masks, ious, stability, areas, low_res = session.run(
            None, {k: v.numpy() for k, v in zip(ONNX_INPUT_NAMES, inputs)}
        )
        with torch.no_grad():
            all_masks, all_ious, _ = full(*inputs)
        best = 0 if num_points > 2 else 1 + int(all_ious[0, 1:].argmax())
        assert masks.shape == (1, 1, 120, 90) and low_res.shape == (1, 1, 256, 256)
        np.testing.assert_allclose(ious[0, 0], all_ious[0, best], atol=1e-5)
        np.testing.assert_allclose(masks[0, 0], all_masks[0, best], atol=2e-4, rtol=1e-4)
        assert areas[0, 0] == (masks[0, 0] > 0).sum()
        expected_stability = calculate_stability_score(torch.from_numpy(masks), 0.0, 1.0)
        np.testing.assert_allclose(stability, expected_stability.numpy(), atol=1e-6)


def test_cli_refuses_an_old_opset_and_a_missing_checkpoint(tmp_path, capsys):
    out = str(tmp_path / "x.onnx")
    with pytest.raises(SystemExit) as exit_info:
        main(["export", "--checkpoint", "x.pth", "--opset", "13", "--out", out])
    assert exit_info.value.code == 2 and "--opset must be at least 18" in capsys.readouterr().err
    missing = str(tmp_path / "missing.pth")
    assert main(["export", "--checkpoint", missing, "--out", out]) == 1
    assert "missing.pth" in capsys.readouterr().err
