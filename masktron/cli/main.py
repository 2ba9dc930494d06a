"""`masktron` command line: one sub-command per module of `masktron.cli`.

Each sub-command module defines `add_arguments(parser)` and `run(args) -> int`. Exit codes follow
argparse and Detectron2's tools: 0 success, 2 bad arguments (argparse's usage error), 1 a run that
failed, with a one-line message a user can act on. Set `MASKTRON_DEBUG=1` to see the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

# name -> (module, one-line help). Modules are imported only when their command runs.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("masktron.cli.demo", "run the bundled model on bundled images (offline)"),
    "predict": ("masktron.cli.predict", "detect and segment objects in images"),
    "sam": ("masktron.cli.sam", "Segment Anything: masks from points/boxes, or everything"),
    "sam2": ("masktron.cli.sam2", "Segment Anything 2: image masks, objects tracked in video"),
    "train": ("masktron.cli.train", "train a model from a config"),
    "eval": ("masktron.cli.eval", "evaluate a model or a results file (COCO AP, PQ)"),
    "export": ("masktron.cli.export", "export a detector or SAM's prompt decoder to ONNX"),
    "serve": ("masktron.cli.serve", "a local web page to label images with SAM (COCO JSON)"),
}


class CommandError(Exception):
    """A failure the user can act on; printed without a traceback, exit code 1."""


def build_parser() -> argparse.ArgumentParser:
    from masktron import __version__

    parser = argparse.ArgumentParser(
        prog="masktron",
        description="Instance, panoptic and promptable segmentation (Detectron2-compatible).",
    )
    parser.add_argument("--version", action="version", version=f"masktron {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, (module_name, help_text) in COMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            if e.name != module_name:
                raise
            continue  # a command of a later release of this file's table
        doc = (module.__doc__ or help_text).strip()
        cmd = sub.add_parser(
            name,
            help=help_text,
            description=doc,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(cmd)
        cmd.set_defaults(_module=module, _parser=cmd)
    return parser


def _take_trailing_overrides(args: argparse.Namespace, extra: list[str]) -> None:
    """Append the leftover arguments to `--opts` when the command takes overrides; anything
    that is an option (or a command without overrides) is an argparse usage error (exit 2)."""
    numbers = [t for t in extra if t.lstrip("-").replace(".", "").isdigit()]
    options = [t for t in extra if t.startswith("-") and t not in numbers]
    if options or not hasattr(args, "extra_opts"):
        args._parser.error(f"unrecognized arguments: {' '.join(options or extra)}")
    args.extra_opts = list(extra) + list(args.extra_opts or [])


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # KEY VALUE overrides after the options (see masktron.cli.run_config)
        _take_trailing_overrides(args, extra)
    try:
        return int(args._module.run(args) or 0)
    except KeyboardInterrupt:
        print(f"masktron {args.command}: interrupted", file=sys.stderr)
        return 130
    except (CommandError, OSError, ValueError, KeyError, RuntimeError) as e:
        if os.environ.get("MASKTRON_DEBUG"):
            raise
        message = str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)
        print(f"masktron {args.command}: error: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
