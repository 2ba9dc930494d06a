"""`torch.compile` captures the models (graph breaks allowed) and changes no output.

The "aot_eager" backend traces every graph through AOTAutograd, as inductor does, but runs it
without generating code, so the test checks what compilation could break (tracing, guards,
data-dependent shapes) in seconds instead of minutes of C++ compilation on a CPU.
"""

import pytest
import torch
from fixtures_util_sam import tiny_sam
from test_rcnn_models import tiny_cfg

from masktron.models.build import build_model

pytestmark = pytest.mark.slow  # tracing takes 10-20 s per model


@pytest.fixture(autouse=True)
def fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def test_compiled_mask_rcnn_gives_the_same_instances():
    torch.manual_seed(0)
    cfg = tiny_cfg("COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml")
    cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = 0.0
    model = build_model(cfg).eval()
    inputs = [{"image": torch.rand(3, 96, 128) * 255, "height": 120, "width": 160}]
    with torch.no_grad():
        expected = model(inputs)[0]["instances"]
        got = torch.compile(model, backend="aot_eager")(inputs)[0]["instances"]
    assert len(expected) > 0 and len(got) == len(expected)
    for field in ("pred_classes", "pred_masks"):
        assert torch.equal(got.get(field), expected.get(field)), field
    torch.testing.assert_close(got.pred_boxes.tensor, expected.pred_boxes.tensor)
    torch.testing.assert_close(got.scores, expected.scores)


def test_compiled_sam_decoder_gives_the_same_masks():
    sam = tiny_sam().eval()
    g = torch.Generator().manual_seed(0)
    embedding = torch.randn(1, 256, 64, 64, generator=g)
    points = (torch.rand(5, 2, 2, generator=g) * 1024, torch.ones(5, 2, dtype=torch.int64))

    def decode(prompt_encoder, mask_decoder):
        sparse, dense = prompt_encoder(points=points, boxes=None, masks=None)
        return mask_decoder(
            image_embeddings=embedding,
            image_pe=prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=True,
        )

    with torch.no_grad():
        expected = decode(sam.prompt_encoder, sam.mask_decoder)
        compiled = torch.compile(sam.mask_decoder, backend="aot_eager")
        got = decode(sam.prompt_encoder, compiled)
    for ours, ref in zip(got, expected):
        torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)
