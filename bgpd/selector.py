"""Calico's label-selector language (placeholder interface; implementation lands with issue 2)."""

from __future__ import annotations

from collections.abc import Mapping


class SelectorError(ValueError):
    """A syntax error; ``column`` is the 1-based column where parsing failed."""

    def __init__(self, message: str, column: int) -> None:
        super().__init__(f"{message} at column {column}")
        self.message = message
        self.column = column


class Selector:
    def matches(self, labels: Mapping[str, str]) -> bool:
        raise NotImplementedError


def parse(text: str) -> Selector:
    raise NotImplementedError
