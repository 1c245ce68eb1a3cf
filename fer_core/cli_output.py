"""What every command line module shares: how a result is printed (text, or JSON with --json) and how a
comma-separated option is read. `__main__.py`, `studies/cli.py` and `failures/cli.py` import it."""

from __future__ import annotations

import argparse
import json
from typing import Any


def emit(args: argparse.Namespace, obj: Any, text: str) -> None:
    print(json.dumps(obj, indent=2, default=str) if args.json else text)


def csv_list(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None
