"""Reading Detectron2's YAML files safely, including their `!!python/object/apply:eval` values.

Detectron2's RetinaNet configs write anchor sizes as a Python expression behind that tag,
which `yaml.safe_load` refuses and `yaml.unsafe_load` would run as arbitrary code. Here the
expression is evaluated by a small interpreter that knows only numbers, lists, tuples,
arithmetic and list comprehensions, so those files load and nothing else can run.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable
from typing import Any

import yaml

EVAL_TAG = "tag:yaml.org,2002:python/object/apply:eval"

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}


def _eval(node: ast.AST, names: dict[str, Any]) -> Any:
    if isinstance(node, ast.Expression):
        return _eval(node.body, names)
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        return node.value
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_eval(e, names) for e in node.elts]
    if isinstance(node, ast.Name) and node.id in names:
        return names[node.id]
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left, names), _eval(node.right, names)
        if isinstance(node.op, ast.Pow) and abs(right) > 64:
            raise ValueError("exponent too large")
        return _BINARY[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand, names))
    if isinstance(node, ast.ListComp) and len(node.generators) == 1:
        gen = node.generators[0]
        if not isinstance(gen.target, ast.Name) or gen.ifs or gen.is_async:
            raise ValueError("only `[expr for name in list]` comprehensions are allowed")
        out = []
        for value in _eval(gen.iter, names):
            out.append(_eval(node.elt, {**names, gen.target.id: value}))
        return out
    raise ValueError(f"{type(node).__name__} is not allowed in a config expression")


def safe_eval(expression: str) -> Any:
    """Evaluate an arithmetic/list expression such as `[[x, x * 2**(1/3)] for x in [32, 64]]`."""
    try:
        tree = ast.parse(expression, mode="eval")
        return _eval(tree, {})
    except (SyntaxError, ValueError, TypeError, ZeroDivisionError) as e:
        raise ValueError(f"cannot evaluate config expression {expression!r}: {e}") from None


class ConfigLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` plus Detectron2's eval tag, evaluated by `safe_eval`."""


def _construct_eval(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    args = loader.construct_sequence(node) if isinstance(node, yaml.SequenceNode) else []
    if len(args) != 1 or not isinstance(args[0], str):
        raise yaml.constructor.ConstructorError(
            None, None, "!!python/object/apply:eval needs one string argument", node.start_mark
        )
    try:
        return safe_eval(args[0])
    except ValueError as e:
        raise yaml.constructor.ConstructorError(None, None, str(e), node.start_mark) from None


ConfigLoader.add_constructor(EVAL_TAG, _construct_eval)
