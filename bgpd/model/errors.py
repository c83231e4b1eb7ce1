"""Configuration errors in the one format every bgpd component prints (DESIGN.md §5)."""

from __future__ import annotations

import reprlib
from dataclasses import dataclass
from typing import Any

_NO_VALUE: Any = object()
# A value is shown as repr() would, cut short: a document can hold a 10 MB string or, through YAML
# aliases, a "billion laughs" list that a plain repr() would take hours to expand.
_SHOW = reprlib.Repr()  # (keyword arguments only from Python 3.12)
_SHOW.maxlevel, _SHOW.maxstring, _SHOW.maxlong, _SHOW.maxother = 3, 200, 100, 200
_SHOW.maxtuple = _SHOW.maxlist = _SHOW.maxdict = _SHOW.maxset = _SHOW.maxfrozenset = 10


def _plain(value: object) -> str:
    """A kind or name from a document, its control characters escaped: one error, one line."""
    text = str(value)
    return text if text.isprintable() else repr(text)[1:-1]


@dataclass(frozen=True)
class ConfigError:
    """One problem with one field of one resource document.

    Rendered as ``<source>:<doc#> <Kind>/<name> <field.path>: <problem>; got <value!r>``; a problem
    of the source as a whole (document 0, no kind or name) as ``<source>: <problem>``.
    ``value`` is omitted from the text when it was not given (or must not be shown, e.g. passwords).
    """

    source: str
    doc: int
    kind: str
    name: str
    field: str
    problem: str
    value: Any = _NO_VALUE

    def __str__(self) -> str:
        if self.doc == 0 and not (self.kind or self.name):  # the source itself: a missing file, etcd down
            where = _plain(self.source)
        else:
            where = f"{_plain(self.source)}:{self.doc} {_plain(self.kind) or '?'}/{_plain(self.name) or '?'}"
        text = f"{where} {self.field}: {self.problem}" if self.field else f"{where}: {self.problem}"
        if self.value is not _NO_VALUE:
            text += f"; got {_SHOW.repr(self.value)}"
        return text

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "doc": self.doc, "kind": self.kind, "name": self.name,
                "field": self.field, "problem": self.problem, "message": str(self)}


class ConfigErrors(Exception):
    """Raised where a caller wants every problem at once (e.g. `bgpd check`, start-up)."""

    def __init__(self, errors: list[ConfigError]) -> None:
        super().__init__("\n".join(str(e) for e in errors))
        self.errors = errors
