"""Argument types the management commands share (the poller's in jobs uses them too)."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def positive(kind: type[float] | type[int]) -> Callable[[str], float | int]:
    """An argparse type: a number of `kind` greater than 0."""

    def parse(text: str) -> float | int:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be greater than 0, not {text}")
        return value

    return parse
