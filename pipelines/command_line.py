"""What every ``marketlake`` subcommand module shares: registering a command, printing JSON."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any


def add_command(
    sub: Any, name: str, handler: Callable[..., int], help_text: str
) -> argparse.ArgumentParser:
    """Add subcommand ``name`` whose ``handler(args, settings)`` returns the exit code."""
    command = sub.add_parser(name, help=help_text, description=help_text)
    command.set_defaults(handler=handler)
    return command


def print_json(data: Any) -> None:
    """Print a command's machine-readable result (``--json``)."""
    print(json.dumps(data, indent=2, default=str))
