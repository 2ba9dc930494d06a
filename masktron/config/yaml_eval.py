"""Reading Detectron2's YAML files safely, including their `!!python/object/apply:eval` values.

Detectron2's RetinaNet configs write anchor sizes as a Python expression behind that tag,
which `yaml.safe_load` refuses and `yaml.unsafe_load` would run as arbitrary code. Here the
expression is evaluated by a small interpreter that knows only numbers, lists, tuples,
arithmetic and list comprehensions, so those files load and nothing else can run.

Everything a file can ask for is bounded, so a few bytes of YAML cannot take minutes or gigabytes:
a config file is at most `MAX_CONFIG_BYTES`, its document (aliases expanded) at most
`MAX_YAML_NODES` nodes, an expression at most `MAX_EXPRESSION_CHARS` characters creating at most
`MAX_LIST_ITEMS` list items in all, and integers at most `MAX_INT_BITS` bits.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable
from typing import IO, Any

import yaml

EVAL_TAG = "tag:yaml.org,2002:python/object/apply:eval"
MAX_CONFIG_BYTES = 1 << 20  # Detectron2's largest config is under 10 KB
MAX_YAML_NODES = 100_000  # a full config has about 600 keys
MAX_EXPRESSION_CHARS = 1000
MAX_LIST_ITEMS = 100_000
MAX_INT_BITS = 256

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


class _Evaluator:
    """Evaluates one expression, counting the list items it creates against `MAX_LIST_ITEMS`."""

    def __init__(self) -> None:
        self.items = 0

    def _charge(self, count: int) -> None:
        self.items += max(count, 0)
        if self.items > MAX_LIST_ITEMS:
            raise ValueError(f"it would create more than {MAX_LIST_ITEMS:,} list items")

    def _binary(self, op: ast.operator, left: Any, right: Any) -> Any:
        if isinstance(op, ast.Pow) and isinstance(right, (int, float)):
            if abs(right) > 64:
                raise ValueError("exponent too large")
            if isinstance(left, int) and isinstance(right, int):
                if abs(left).bit_length() * abs(right) > MAX_INT_BITS:
                    raise ValueError(f"the result would exceed {MAX_INT_BITS} bits")
        if isinstance(op, ast.Mult):
            if isinstance(left, list) != isinstance(right, list):  # [x] * n repeats a list
                items, times = (left, right) if isinstance(left, list) else (right, left)
                if isinstance(times, int):
                    self._charge(len(items) * times)
            elif isinstance(left, int) and isinstance(right, int):
                if abs(left).bit_length() + abs(right).bit_length() > MAX_INT_BITS:
                    raise ValueError(f"the result would exceed {MAX_INT_BITS} bits")
        if isinstance(op, ast.Add) and isinstance(left, list) and isinstance(right, list):
            self._charge(len(left) + len(right))
        return _BINARY[type(op)](left, right)

    def eval(self, node: ast.AST, names: dict[str, Any]) -> Any:
        if isinstance(node, ast.Expression):
            return self.eval(node.body, names)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            if isinstance(node.value, int) and node.value.bit_length() > MAX_INT_BITS:
                raise ValueError(f"an integer exceeds {MAX_INT_BITS} bits")
            return node.value
        if isinstance(node, (ast.List, ast.Tuple)):
            self._charge(len(node.elts))
            return [self.eval(e, names) for e in node.elts]
        if isinstance(node, ast.Name) and node.id in names:
            return names[node.id]
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            left, right = self.eval(node.left, names), self.eval(node.right, names)
            return self._binary(node.op, left, right)
        if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
            return _UNARY[type(node.op)](self.eval(node.operand, names))
        if isinstance(node, ast.ListComp) and len(node.generators) == 1:
            gen = node.generators[0]
            if not isinstance(gen.target, ast.Name) or gen.ifs or gen.is_async:
                raise ValueError("only `[expr for name in list]` comprehensions are allowed")
            values = self.eval(gen.iter, names)
            if not isinstance(values, list):
                raise ValueError("a comprehension must iterate over a list")
            self._charge(len(values))
            return [self.eval(node.elt, {**names, gen.target.id: v}) for v in values]
        raise ValueError(f"{type(node).__name__} is not allowed in a config expression")


def safe_eval(expression: str) -> Any:
    """Evaluate an arithmetic/list expression such as `[[x, x * 2**(1/3)] for x in [32, 64]]`."""
    shown = expression if len(expression) <= 80 else expression[:77] + "..."
    try:
        if len(expression) > MAX_EXPRESSION_CHARS:
            raise ValueError(f"longer than {MAX_EXPRESSION_CHARS} characters")
        tree = ast.parse(expression, mode="eval")
        return _Evaluator().eval(tree, {})
    except (SyntaxError, ValueError, TypeError, ZeroDivisionError, OverflowError) as e:
        raise ValueError(f"cannot evaluate config expression {shown!r}: {e}") from None
    except (RecursionError, MemoryError):
        raise ValueError(f"cannot evaluate config expression {shown!r}: nested too deep") from None


def _expanded_size(node: yaml.Node, sizes: dict[int, int]) -> int:
    """Nodes in the document once aliases are expanded, counted without expanding them."""
    known = sizes.get(id(node))
    if known is not None:
        return known
    sizes[id(node)] = MAX_YAML_NODES + 1  # a cycle counts as too large
    total = 1
    if isinstance(node, yaml.SequenceNode):
        total += sum(_expanded_size(child, sizes) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            total += _expanded_size(key, sizes) + _expanded_size(value, sizes)
    sizes[id(node)] = min(total, MAX_YAML_NODES + 1)
    return sizes[id(node)]


def load_config_yaml(stream: IO[str], name: str) -> Any:
    """Parse one YAML config document with `ConfigLoader`, within the bounds above.

    Args:
        stream: the open text file.
        name: the file, named in errors.

    Raises:
        yaml.YAMLError: bad YAML, or a document larger than the bounds allow.
    """
    text = stream.read(MAX_CONFIG_BYTES + 1)
    if len(text) > MAX_CONFIG_BYTES:
        raise yaml.YAMLError(f"{name} is larger than {MAX_CONFIG_BYTES:,} characters")
    loader = ConfigLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_size(node, {}) > MAX_YAML_NODES:
            raise yaml.YAMLError(
                f"{name}: the document expands to more than {MAX_YAML_NODES:,} values "
                "(aliases repeated too often)"
            )
        return loader.construct_document(node)
    except RecursionError:
        raise yaml.YAMLError(f"{name}: nested too deep") from None
    finally:
        loader.dispose()


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
