"""Detectron2's configuration API (`get_cfg`, `CfgNode.merge_from_file`, ...) over a typed schema.

The values live in an OmegaConf structured config built from `masktron.config.schema.Config`, so
types are checked and unknown keys are refused on every merge. `CfgNode` gives it the methods and
semantics Detectron2 users rely on: `_BASE_` inheritance in YAML files, Python-literal strings
("(0.5, 1.0)") decoded as yacs does, `merge_from_list(["KEY", "VALUE", ...])`, `freeze`, `clone`
and `dump`.
"""

from __future__ import annotations

import ast
import copy
import difflib
import os
from collections.abc import Iterator, Mapping
from typing import Any, cast

import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException, ReadonlyConfigError

from masktron.config.rules import validate
from masktron.config.schema import Config
from masktron.config.yaml_eval import load_config_yaml

BASE_KEY = "_BASE_"


class ConfigError(ValueError):
    """A configuration file or override that cannot be applied; the message names the key."""


class UnknownKeyError(ConfigError, KeyError, AttributeError):
    """A key that the schema does not define (an AttributeError too, so `hasattr` works)."""

    def __str__(self) -> str:  # KeyError would print the message quoted
        return str(self.args[0])


def _all_keys(node: DictConfig, prefix: str = "") -> list[str]:
    keys = []
    for name in node.keys():
        path = f"{prefix}{name!s}"
        keys.append(path)
        value = node._get_node(name)
        if isinstance(value, DictConfig):
            keys.extend(_all_keys(value, path + "."))
    return keys


def _decode(value: Any) -> Any:
    """Decode Python literals in strings (`"(1, 2)"` -> [1, 2]) and turn tuples into lists."""
    if isinstance(value, Mapping):
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_decode(v) for v in value]
    if isinstance(value, str):
        try:
            literal = ast.literal_eval(value)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            return value
        if isinstance(literal, (list, tuple, int, float, bool)) or literal is None:
            return _decode(literal) if isinstance(literal, (list, tuple)) else literal
        return value
    return value


def _merge_dicts(base: dict, update: Mapping) -> dict:
    """Recursive dict merge where `update` wins; used to resolve `_BASE_` chains."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge_dicts(out[key], value)
        else:
            out[key] = value
    return out


def load_yaml_with_base(path: str, _seen: tuple[str, ...] = ()) -> dict:
    """Read a YAML config file and the chain of `_BASE_` files it names, merged into one dict."""
    path = os.path.abspath(os.path.expanduser(path))
    if path in _seen:
        raise ConfigError(f"{path}: _BASE_ chain loops back to itself")
    if not os.path.isfile(path):
        raise ConfigError(f"config file not found: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            data = load_config_yaml(f, path) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: the top level must be a mapping of keys, got {type(data).__name__}"
        )
    base = data.pop(BASE_KEY, None)
    if base is None:
        return data
    if not isinstance(base, str):
        raise ConfigError(f"{path}: {BASE_KEY} must be a file path, got {base!r}")
    if not os.path.isabs(os.path.expanduser(base)):
        base = os.path.join(os.path.dirname(path), base)
    return _merge_dicts(load_yaml_with_base(base, _seen + (path,)), data)


def _allow_new_keys(node: DictConfig) -> None:
    """Let assignment add keys to a schema node (its declared keys keep their types).

    OmegaConf refuses new keys on a node typed by a dataclass; Detectron2 projects add keys by
    assignment (`cfg.MODEL.ROI_HEADS.MY_FLAG = True`), so the node's object type is relaxed to a
    plain dict the first time that happens. Merges still refuse keys the node does not have.
    """
    if OmegaConf.get_type(node) not in (dict, None):
        node._metadata.object_type = dict


def _plain(value: Any) -> Any:
    """A value ready to store: CfgNodes as their containers, tuples as lists."""
    if isinstance(value, CfgNode):
        return value.to_dict()
    return _decode(value) if isinstance(value, (tuple, list)) else value


class CfgNode:
    """One node of the configuration tree; attribute access reaches the keys.

    Lists come back as plain Python lists; sub-nodes come back as `CfgNode`s sharing the storage,
    so `cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = 0.5` changes `cfg`.

    As in Detectron2, assigning a key the node lacks adds it (`cfg.MY_KEY = 1`,
    `cfg.MODEL.MY_HEAD = CfgNode({"DIM": 8})`), while merging a file or a list of overrides
    refuses keys the config does not have. `CfgNode()` is an empty node and `CfgNode({...})`
    a node holding a dict's keys; `get_cfg()` gives every default.

    Args:
        init_dict: None (empty node), a mapping of keys to values, or an OmegaConf node to wrap.
    """

    __slots__ = ("_node",)

    def __init__(self, init_dict: Mapping | DictConfig | None = None):
        if isinstance(init_dict, DictConfig):
            node = init_dict
        else:
            node = OmegaConf.create(_plain(dict(init_dict or {})))
            OmegaConf.set_struct(node, True)
        object.__setattr__(self, "_node", node)

    # ---- attribute access -------------------------------------------------------------------
    def _path(self, key: str) -> str:
        prefix = self._node._get_full_key(None)
        return f"{prefix}.{key}" if prefix else key

    def _unknown(self, key: str, source: str = "") -> UnknownKeyError:
        root = self._node._get_root()
        path = self._path(key)
        match = difflib.get_close_matches(path, _all_keys(root), n=1, cutoff=0.6)
        hint = f"; did you mean {match[0]}?" if match else ""
        where = f"{source}: " if source else ""
        return UnknownKeyError(f"{where}unknown config key {path}{hint}")

    def __getattr__(self, key: str) -> Any:
        if key.startswith("__"):
            raise AttributeError(key)
        node = self._node
        if key not in node:
            raise self._unknown(key)
        value = node[key]
        if isinstance(value, DictConfig):
            return CfgNode(value)
        if isinstance(value, ListConfig):
            return OmegaConf.to_container(value)
        return value

    __getitem__ = __getattr__

    def __setattr__(self, key: str, value: Any) -> None:
        if key not in self._node:
            self._add_key(key, value)
            return
        try:
            value = _plain(value)
            # update() converts to the declared type (cfg.SOLVER.BASE_LR = 1 -> 1.0), as yacs did
            OmegaConf.update(self._node, key, value, merge=False)
        except ReadonlyConfigError:
            raise ConfigError(
                f"cannot set {self._path(key)}: the config is frozen (defrost() first)"
            ) from None
        except OmegaConfBaseException as e:
            raise ConfigError(
                f"cannot set {self._path(key)} to {value!r}: {_first_line(e)}"
            ) from None

    __setitem__ = __setattr__

    def _add_key(self, key: str, value: Any) -> None:
        if self.is_frozen():
            raise ConfigError(
                f"cannot add {self._path(key)}: the config is frozen (defrost() first)"
            )
        _allow_new_keys(self._node)
        with open_dict(self._node):
            self._node[key] = _plain(value)

    def __delattr__(self, key: str) -> None:
        if key not in self._node:
            raise self._unknown(key)
        if self.is_frozen():
            raise ConfigError(f"cannot delete {self._path(key)}: the config is frozen")
        _allow_new_keys(self._node)
        with open_dict(self._node):
            del self._node[key]

    __delitem__ = __delattr__

    def __len__(self) -> int:
        return len(self._node)

    def keys(self) -> list[str]:
        return [str(k) for k in self._node.keys()]

    def values(self) -> list[Any]:
        return [self[k] for k in self.keys()]

    def items(self) -> list[tuple[str, Any]]:
        return [(k, self[k]) for k in self.keys()]

    def __contains__(self, key: str) -> bool:
        return key in self._node

    def __iter__(self) -> Iterator[str]:
        return iter(self._node.keys())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CfgNode) and self._node == other._node

    def __repr__(self) -> str:
        return self.dump()

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key) if key in self._node else default

    def to_dict(self) -> dict:
        """The whole node as plain Python containers."""
        return OmegaConf.to_container(self._node)  # type: ignore[return-value]

    # ---- Detectron2's methods -------------------------------------------------------------
    def merge_from_file(self, path: str) -> None:
        """Merge a YAML file (and its `_BASE_` chain) into this config.

        A file of an older config version (its `VERSION`, or guessed from its keys) has its keys
        renamed to the current ones first, as Detectron2 does.
        """
        from masktron.config.compat import upgrade_dict

        try:
            data = upgrade_dict(load_yaml_with_base(str(path)), str(path))
        except ValueError as e:
            raise ConfigError(str(e)) from None
        self._merge(data, source=str(path))

    def merge_from_other_cfg(self, other: CfgNode) -> None:
        self._merge(other.to_dict(), source="other config")

    def merge_from_list(self, opts: list[Any]) -> None:
        """Merge command-line overrides: `["MODEL.WEIGHTS", "x.pkl", "SOLVER.BASE_LR", "0.1"]`."""
        if len(opts) % 2 != 0:
            raise ConfigError(f"overrides must be KEY VALUE pairs, got an odd number: {list(opts)}")
        for key, value in zip(opts[0::2], opts[1::2]):
            update: dict = {}
            node = update
            parts = str(key).split(".")
            for part in parts[:-1]:
                node = node.setdefault(part, {})
            node[parts[-1]] = value
            self._merge(update, source="command line")

    def _merge(self, data: Mapping, source: str) -> None:
        data = dict(data)
        data.pop(BASE_KEY, None)
        self._check_keys(self._node, _decode(data), source)
        try:
            # Merging into a DictConfig gives a DictConfig (OmegaConf's stub returns any config).
            merged = cast(DictConfig, OmegaConf.merge(self._node, _decode(data)))
        except ReadonlyConfigError:
            raise ConfigError(f"{source}: the config is frozen (defrost() first)") from None
        except OmegaConfBaseException as e:
            key = getattr(e, "full_key", "") or "?"
            raise ConfigError(f"{source}: bad value for {key}: {_first_line(e)}") from None
        # Copy the merged values into our storage so existing references to sub-nodes stay live.
        _update_in_place(self._node, merged)

    def _check_keys(self, node: DictConfig, data: Mapping, source: str) -> None:
        for key, value in data.items():
            if key not in node:
                raise CfgNode(node)._unknown(str(key), source)
            child = node._get_node(key)
            if isinstance(child, DictConfig):
                if not isinstance(value, Mapping):
                    path = CfgNode(node)._path(str(key))
                    raise ConfigError(f"{source}: {path} is a group of keys, got {value!r}")
                self._check_keys(child, value, source)

    def freeze(self) -> None:
        """Make the config read-only; a whole config is first checked against `rules.RULES`."""
        if self._node._get_parent() is None:
            validate(self)
        OmegaConf.set_readonly(self._node, True)

    def defrost(self) -> None:
        OmegaConf.set_readonly(self._node, False)

    def is_frozen(self) -> bool:
        return bool(OmegaConf.is_readonly(self._node))

    def clone(self) -> CfgNode:
        duplicate = copy.deepcopy(self._node)
        if duplicate._get_parent() is not None:  # a sub-node: detach it from the tree
            duplicate = cast(DictConfig, OmegaConf.merge(duplicate))
        OmegaConf.set_struct(duplicate, True)
        OmegaConf.set_readonly(duplicate, False)
        return CfgNode(duplicate)

    def dump(self, **kwargs: Any) -> str:
        """The config as YAML text that `merge_from_file` reads back."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False, **kwargs)


def _update_in_place(target: DictConfig, source: DictConfig) -> None:
    """Copy `source`'s values into `target`, descending into sub-nodes instead of replacing them
    (a replaced node would lose the keys users added by assignment and the schema's types)."""
    for key in source.keys():
        child = target._get_node(key) if key in target else None
        value = source._get_node(key)
        if isinstance(child, DictConfig) and isinstance(value, DictConfig):
            _update_in_place(child, value)
        else:
            with open_dict(target):
                target[key] = source[key]


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def get_cfg() -> CfgNode:
    """A fresh config holding every default (Detectron2's `get_cfg`)."""
    node = OmegaConf.structured(Config)
    OmegaConf.set_struct(node, True)
    return CfgNode(node)
