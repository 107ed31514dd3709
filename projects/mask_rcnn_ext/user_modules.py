"""`--import MODULE`, shared by the tools: modules of the user's that register datasets or heads.

Registrations live in the process that makes them, so every tool (and every worker process of a
multi-process run) imports the modules itself before it reads a config.
"""

import argparse
import importlib


def add_import_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help="import MODULE first (repeatable): a module of yours that registers datasets "
        "(e.g. with mask_rcnn_ext.data.register_coco_keypoints) or heads; it must be importable "
        "(installed, or its folder on PYTHONPATH)",
    )


def parse_args_importing(parser: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
    """`parser.parse_args(argv)`, then the `--import` modules; one that fails to import ends the
    tool with argparse's usage error (exit code 2) naming it."""
    args = parser.parse_args(argv)
    try:
        import_user_modules(args.imports)
    except ImportError as error:
        parser.error(str(error))
    return args


def import_user_modules(modules: list[str]) -> None:
    """Import each module; an ImportError names the `--import` that failed."""
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as error:
            raise ImportError(f"--import {module}: {error}") from error
