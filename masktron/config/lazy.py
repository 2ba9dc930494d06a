"""Detectron2's `LazyConfig`: Python (or YAML) config files of `LazyCall`s, loaded as OmegaConf.

A `.py` config is a Python file whose top-level dicts, lists and `LazyCall`s are the config.
Relative imports inside it (`from .common.optim import SGD`) load the other config file afresh
(so edits in one file never leak into another), and `LazyConfig.load_rel` does the same by path.
`save` writes YAML with callables as dotted names; `load` reads it back.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import dataclasses
import importlib
import inspect
import os
import types
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.nodes import ValueNode

from masktron.utils.file_io import atomic_open
from masktron.utils.registry import _convert_target_to_string, locate

__all__ = ["LazyConfig"]

# Config modules get names under this package so relative imports inside them can be told apart.
_PACKAGE = "masktron._lazy_config"


def _as_config(value: Any) -> Any:
    """Dicts and lists as OmegaConf nodes that may hold any object."""
    if isinstance(value, dict):
        return DictConfig(value, flags={"allow_objects": True})
    if isinstance(value, list):
        return ListConfig(value, flags={"allow_objects": True})
    return value


def _config_file(relative: str, level: int, importer: str) -> str:
    """The file a relative import `from <dots><relative> import ...` in `importer` names."""
    folder = os.path.dirname(importer)
    for _ in range(level - 1):
        folder = os.path.dirname(folder)
    path = os.path.join(folder, *relative.split(".")) if relative else folder
    if os.path.isfile(path + ".py"):
        return path + ".py"
    if os.path.isdir(path) and os.path.isfile(os.path.join(path, "__init__.py")):
        return os.path.join(path, "__init__.py")
    raise ImportError(
        f"{importer}: relative import of {relative!r} does not name a config file ({path}.py)"
    )


@contextlib.contextmanager
def _config_imports() -> Iterator[None]:
    """While config files run, relative imports in them load other config files as configs."""
    original = builtins.__import__

    def config_import(name, globals=None, locals=None, fromlist=(), level=0):  # type: ignore[no-untyped-def]
        importer = (globals or {}).get("__file__", "")
        package = (globals or {}).get("__package__") or ""
        if level > 0 and package.startswith(_PACKAGE) and importer:
            path = _config_file(name, level, importer)
            module = types.ModuleType(_PACKAGE + "." + uuid.uuid4().hex)
            for key, value in _run_file(path).items():
                if not key.startswith("__"):
                    setattr(module, key, _as_config(value))
            return module
        return original(name, globals, locals, fromlist, level)

    builtins.__import__ = config_import
    try:
        yield
    finally:
        builtins.__import__ = original


def _run_file(path: str) -> dict[str, Any]:
    """Execute a Python config file; its global namespace."""
    with open(path, encoding="utf-8") as f:
        source = f.read()
    try:
        code = compile(source, path, "exec")
    except SyntaxError as e:
        raise SyntaxError(f"config file {path} is not valid Python: {e}") from e
    namespace: dict[str, Any] = {
        "__file__": path,
        "__name__": _PACKAGE + "." + uuid.uuid4().hex,
        "__package__": _PACKAGE + "." + uuid.uuid4().hex,
    }
    with _config_imports():
        exec(code, namespace)
    return namespace


def _plain_value(value: Any) -> Any:
    """A leaf for YAML: a class or function given as an argument (RegNet's `stem_class`)
    becomes the call that finds it again, `{_target_: masktron.utils.registry.locate, name:
    <dotted name>}`, so `instantiate` passes the same object; other values are unchanged (an
    object YAML cannot hold makes `save` fail with a clear message)."""
    if isinstance(value, tuple):  # omegaconf 2.4 keeps a tuple as one value; YAML has lists
        return [_plain_value(v) for v in value]
    if not (isinstance(value, type) or inspect.isfunction(value) or inspect.isbuiltin(value)):
        return value
    name = _convert_target_to_string(value)
    try:
        found = locate(name)
    except ImportError:
        return value  # a lambda or local function: not importable by name
    if found is not value:
        return value
    return {"_target_": _convert_target_to_string(locate), "name": name}


# omegaconf >= 2.4 keeps tuples as TupleConfig (not a ListConfig); YAML writes both as lists.
def _sequence_configs() -> tuple[type, ...]:
    try:
        tuple_config = importlib.import_module("omegaconf.tupleconfig").TupleConfig
    except (ImportError, AttributeError):  # omegaconf < 2.4
        return (ListConfig,)
    return (ListConfig, tuple_config)


_SEQUENCE_CONFIGS = _sequence_configs()


def _to_plain(node: Any) -> Any:
    """Plain containers for YAML: callables in `_target_` as dotted names, classes and
    functions given as arguments as calls that find them (`_plain_value`), nodes typed by a
    dataclass as `{_target_: <dataclass>, fields...}`, interpolations kept unresolved."""
    if isinstance(node, DictConfig):
        out: dict[str, Any] = {}
        node_type = OmegaConf.get_type(node)
        if dataclasses.is_dataclass(node_type):
            out["_target_"] = _convert_target_to_string(node_type)  # type: ignore[arg-type]
        for key in node.keys():
            child = node._get_node(key)
            if isinstance(child, (DictConfig, *_SEQUENCE_CONFIGS)):
                out[str(key)] = _to_plain(child)
                continue
            value = _unwrap(child)
            if key == "_target_" and callable(value):
                out[str(key)] = _convert_target_to_string(value)
            else:
                out[str(key)] = _plain_value(value)
        return out
    if isinstance(node, _SEQUENCE_CONFIGS):
        items: Any = node
        return [_to_plain(items._get_node(i)) for i in range(len(items))]
    return _plain_value(_unwrap(node))


def _unwrap(node: Any) -> Any:
    """A value node's value; omegaconf 2.4 can wrap a list item's value node in another one."""
    while isinstance(node, ValueNode):
        node = node._value()
    return node


def _parse_value(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


class LazyConfig:
    """Load, save and override Python/YAML lazy configs (Detectron2's API)."""

    @staticmethod
    def load(filename: str, keys: str | Sequence[str] | None = None) -> Any:
        """Load a `.py` or `.yaml` config.

        Args:
            filename: the file.
            keys: return only these top-level names (one name: its value; several: a tuple).

        Returns:
            A `DictConfig` of the file's public top-level dicts, lists and `LazyCall`s.
        """
        filename = os.path.abspath(os.path.expanduser(filename))
        if not os.path.isfile(filename):
            raise FileNotFoundError(f"config file not found: {filename}")
        if filename.endswith(".py"):
            namespace = _run_file(filename)
            if keys is not None:  # any top-level name of the file, not only config nodes
                if isinstance(keys, str):
                    return _as_config(namespace[keys])
                return tuple(_as_config(namespace[k]) for k in keys)
            content = {
                name: _as_config(value)
                for name, value in namespace.items()
                if not name.startswith("_")
                and isinstance(value, (DictConfig, ListConfig, dict, list))
            }
            cfg = DictConfig(content, flags={"allow_objects": True})
        elif filename.endswith((".yaml", ".yml")):
            with open(filename, encoding="utf-8") as f:
                data = yaml.safe_load(f) or {}
            cfg = DictConfig(data, flags={"allow_objects": True})
        else:
            raise ValueError(f"{filename}: a lazy config must be a .py or .yaml file")
        if keys is None:
            return cfg
        if isinstance(keys, str):
            return _as_config(cfg[keys])
        return tuple(_as_config(cfg[k]) for k in keys)

    @staticmethod
    def load_rel(filename: str, keys: str | Sequence[str] | None = None) -> Any:
        """`load` with `filename` relative to the config file that calls it."""
        import inspect

        caller = inspect.stack()[1].frame.f_globals.get("__file__", "")
        if not os.path.isabs(filename) and caller:
            filename = os.path.join(os.path.dirname(caller), filename)
        return LazyConfig.load(filename, keys)

    @staticmethod
    def save(cfg: DictConfig, filename: str) -> None:
        """Write `cfg` as YAML that `load` reads back (callables become dotted names)."""
        data = _to_plain(cfg)
        try:
            text = yaml.safe_dump(data, default_flow_style=None, allow_unicode=True, width=9999)
        except yaml.representer.RepresenterError as e:
            raise ValueError(f"cannot save the config as YAML: it holds an object ({e})") from e
        with atomic_open(filename, "w") as f:
            f.write(text)

    @staticmethod
    def to_py(cfg: DictConfig, prefix: str = "cfg.") -> str:
        """The config as Python assignments (`cfg.train.max_iter = 184375`, LazyCalls as calls
        of their targets' dotted names), formatted by `black` when installed; see
        `masktron.config.lazy_py`."""
        from masktron.config.lazy_py import config_to_py

        return config_to_py(cfg, prefix)

    @staticmethod
    def apply_overrides(cfg: DictConfig, overrides: Sequence[str]) -> DictConfig:
        """Apply `["a.b=1", 'c="text"', ...]` (values read as Python literals, else strings).

        Raises:
            KeyError: a key passes through a value that is not a config node.
        """
        for override in overrides:
            key, sep, text = override.partition("=")
            if not sep:
                raise ValueError(f"override {override!r} is not KEY=VALUE")
            key = key.strip()
            parts = key.split(".")
            node: Any = cfg
            for depth, part in enumerate(parts[:-1]):
                if part in node:
                    node = node[part]
                    if not isinstance(node, DictConfig):
                        prefix = ".".join(parts[: depth + 1])
                        raise KeyError(
                            f"cannot set {key}: {prefix} is a {type(node).__name__}, not a config"
                        )
            OmegaConf.update(cfg, key, _parse_value(text.strip()), merge=True)
        return cfg
