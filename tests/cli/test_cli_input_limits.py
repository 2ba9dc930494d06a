"""Command-line values parsed as users mean them: negative prompt points, thin images."""

import argparse

import pytest

from masktron.cli import sam
from masktron.cli.input_limits import drawing_scale, non_negative_int, unit_interval
from masktron.data.transforms.augmentation_impl import ResizeShortestEdge


def test_sam_point_with_negative_coordinates_is_a_value():
    parser = argparse.ArgumentParser()
    sam.add_arguments(parser)
    args = parser.parse_args(
        ["im.jpg", "--checkpoint", "c.pth", "--out", "o", "--point", "-10,-10", "--point",
         "-1.5,3,0", "--box", "-5,-5,10,10"]
    )  # fmt: skip
    assert args.point == [(-10.0, -10.0, 1), (-1.5, 3.0, 0)]
    assert args.box == [(-5.0, -5.0, 10.0, 10.0)]
    with pytest.raises(SystemExit):  # a real unknown option is still refused
        parser.parse_args(["im.jpg", "--checkpoint", "c", "--out", "o", "-x"])


def test_value_types():
    assert unit_interval("0.25") == 0.25 and unit_interval("1") == 1.0
    for bad in ("nan", "-inf", "1.01", "x"):
        with pytest.raises(argparse.ArgumentTypeError):
            unit_interval(bad)
    assert non_negative_int("200_000_000") == 200_000_000
    with pytest.raises(argparse.ArgumentTypeError):
        non_negative_int("-1")
    assert drawing_scale(11000, 11000, 4096) == pytest.approx(4096 / 11000)
    assert drawing_scale(300, 400, 4096) == 1.0 and drawing_scale(9000, 10, 0) == 1.0


def test_thin_image_resizes_to_at_least_one_pixel():
    assert ResizeShortestEdge.get_output_shape(2, 20000, 800, 1333) == (1, 1333)
    assert ResizeShortestEdge.get_output_shape(20000, 2, 800, 1333) == (1333, 1)
    assert ResizeShortestEdge.get_output_shape(480, 640, 800, 1333) == (800, 1067)  # unchanged
