"""`DatasetEvaluators`, `inference_on_dataset` and Detectron2's table layout."""

from __future__ import annotations

import logging

import pytest
import torch

from masktron.evaluation import (
    DatasetEvaluator,
    DatasetEvaluators,
    create_small_table,
    inference_on_dataset,
    print_csv_format,
)
from masktron.evaluation.table import panoptic_table, per_category_table


class Counting(DatasetEvaluator):
    def __init__(self, task: str):
        self.task = task
        self.reset()

    def reset(self):
        self.seen: list = []

    def process(self, inputs, outputs):
        self.seen += [(i["image_id"], o["value"]) for i, o in zip(inputs, outputs)]

    def evaluate(self):
        return {self.task: {"count": len(self.seen), "sum": float(sum(v for _, v in self.seen))}}


class Doubler(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.tensor(2.0))
        self.modes: list[bool] = []

    def forward(self, batch):
        self.modes.append(self.training)
        assert not torch.is_grad_enabled()
        return [{"value": float(self.weight * b["x"])} for b in batch]


def test_inference_on_dataset_runs_every_batch_in_eval_mode(caplog):
    model = Doubler().train()
    loader = [[{"image_id": i, "x": i}, {"image_id": i + 100, "x": 1}] for i in range(7)]
    evaluators = [Counting("a"), Counting("b")]
    with caplog.at_level(logging.INFO, logger="masktron.evaluation.evaluator"):
        results = inference_on_dataset(model, loader, evaluators, progress=False)
    assert results == {"a": {"count": 14, "sum": 2.0 * (21 + 7)}, "b": results["b"]}
    assert model.modes == [False] * 7 and model.training
    assert "Total inference time" in caplog.text and "pure compute time" in caplog.text
    assert inference_on_dataset(model, iter(loader[:1]), None, progress=False) == {}


def test_duplicate_task_names_are_an_error():
    evaluators = DatasetEvaluators([Counting("a"), Counting("a")])
    with pytest.raises(ValueError, match="both produce results named 'a'"):
        evaluators.evaluate()


def test_tables_have_detectron2s_layout():
    table = create_small_table({"AP": 40.2153, "AP50": 61.0, "APs": float("nan")})
    assert table.splitlines() == [
        "|   AP   |  AP50  |  APs  |",
        "|:------:|:------:|:-----:|",
        "| 40.215 | 61.000 |  nan  |",
    ]
    per_cat = per_category_table(
        {"person": 53.2881, "bicycle": 29.2, "traffic light": 0.5, "x": 1.0}
    )
    assert per_cat.splitlines() == [
        "| category   | AP     | category   | AP     | category      | AP    |",
        "|:-----------|:-------|:-----------|:-------|:--------------|:------|",
        "| person     | 53.288 | bicycle    | 29.200 | traffic light | 0.500 |",
        "| x          | 1.000  |            |        |               |       |",
    ]
    group = {"pq": 0.5, "sq": 0.75, "rq": 2 / 3, "n": 3}
    lines = panoptic_table({"All": group, "Things": group, "Stuff": group}).splitlines()
    assert lines[0] == "|        |   PQ   |   SQ   |   RQ   |  #categories  |"
    assert lines[2] == "|  All   | 50.000 | 75.000 | 66.667 |       3       |"


def test_print_csv_format(caplog):
    with caplog.at_level(logging.INFO, logger="masktron.evaluation.table"):
        print_csv_format({"bbox": {"AP": 1.5, "AP50": 2.25, "AP-person": 3.0}})
    assert caplog.messages == [
        "copypaste: Task: bbox",
        "copypaste: AP,AP50",
        "copypaste: 1.5000,2.2500",
    ]
