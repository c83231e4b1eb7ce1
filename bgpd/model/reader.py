"""`DocReader`: walks one decoded document and collects every problem as a `ConfigError`.

The kind parsers (`bgpd.model.kinds`) call it with a field path and a scalar parser from
`bgpd.model.values`; a parser's `ValueError` becomes ``<path>: <problem>; got <value>``.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from functools import lru_cache
from typing import Any, TypeVar

from bgpd import selector
from bgpd.model.errors import ConfigError
from bgpd.model.values import expect_str, type_name

T = TypeVar("T")

MAX_SELECTOR_LENGTH = 1024
_HIDDEN: Any = object()  # "do not show the value" (Secrets)


class DocReader:
    def __init__(self, source: str, doc: int, kind: str, name: str) -> None:
        self.source, self.doc, self.kind, self.name = source, doc, kind, name
        self.errors: list[ConfigError] = []

    def error(self, path: str, problem: str, value: Any = _HIDDEN) -> None:
        if value is _HIDDEN:
            self.errors.append(ConfigError(self.source, self.doc, self.kind, self.name, path, problem))
        else:
            self.errors.append(ConfigError(self.source, self.doc, self.kind, self.name, path, problem, value))

    def value(self, path: str, raw: Any, parse: Callable[[Any], T], show: bool = True) -> T | None:
        """``parse(raw)``, or None after recording its problem (with the value unless ``show`` is off)."""
        try:
            return parse(raw)
        except ValueError as exc:
            self.error(path, str(exc), raw if show else _HIDDEN)
            return None

    def fields(self, raw: Any, path: str, known: frozenset[str]) -> dict[str, Any]:
        """The fields of an object that are set; reports unknown ones.

        null and "" count as unset, as in Calico's Go types (``omitempty``): a Node dump's
        ``ipv6Address: ""`` or a BGPPeer's ``nodeSelector: ""`` mean "not set".
        """
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            self.error(path, f"expected object, not {type_name(raw)}", raw)
            return {}
        found: dict[str, Any] = {}
        for key, item in raw.items():
            if key not in known:
                hint = difflib.get_close_matches(str(key), sorted(known), n=1)
                suggestion = f"; did you mean {hint[0]!r}?" if hint else ""
                self.error(_join(path, str(key)), "unknown field" + suggestion)
            elif item is not None and item != "":
                found[key] = item
        return found

    def items(self, raw: Any, path: str, max_items: int | None = None) -> Iterator[tuple[str, Any]]:
        """(path, item) for each entry of a list; reports a non-list or too many entries."""
        if not isinstance(raw, list):
            self.error(path, f"expected list, not {type_name(raw)}", raw)
            return
        if max_items is not None and len(raw) > max_items:
            self.error(path, f"must have at most {max_items} entries; it has {len(raw)}")
        for index, item in enumerate(raw):
            yield f"{path}[{index}]", item

    def mapping(self, raw: Any, path: str) -> dict[str, Any]:
        if not isinstance(raw, dict):
            self.error(path, f"expected object, not {type_name(raw)}", raw)
            return {}
        return raw

    def required(self, found: dict[str, Any], key: str, path: str, parse: Callable[[Any], T]) -> T | None:
        """The parsed value of a required field; a missing one is reported."""
        if key not in found:
            self.error(_join(path, key), "required field is missing")
            return None
        return self.value(_join(path, key), found[key], parse)

    def optional(self, found: dict[str, Any], key: str, path: str, parse: Callable[[Any], T]) -> T | None:
        """The parsed value of an optional field (None when unset or invalid)."""
        return self.value(_join(path, key), found[key], parse) if key in found else None


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def parse_selector(raw: Any) -> selector.Selector:
    text = expect_str(raw)
    if len(text) > MAX_SELECTOR_LENGTH:
        raise ValueError(f"selector must be at most {MAX_SELECTOR_LENGTH} characters")
    return _parse_selector(text)


@lru_cache(maxsize=4096)
def _parse_selector(text: str) -> selector.Selector:
    """Cached: a cluster repeats the same few selectors on many resources."""
    try:
        return selector.parse(text)
    except selector.SelectorError as exc:
        raise ValueError(f"selector syntax error at column {exc.column}: {exc.message}") from None
