"""YAML text -> plain Python values, the way calicoctl reads resources, and fast.

YAML 1.1 rules (``yes``/``on`` are booleans, which the loader turns into label strings
``"true"``; calico-semantics.md §1.1), except base-60 numbers: an unquoted community ``65000:10``
stays a string, as Go's YAML library keeps it.

libyaml parses to events; values are built here from the events with an explicit stack, not by
PyYAML's composer and constructor: those recurse per nesting level (libyaml's composer in C, so a
deeply nested file crashes the process) and take most of the time for a big cluster. Nesting is
limited to `MAX_DEPTH`; collections with explicit tags such as ``!!set`` are refused (a resource has
none); anchors, aliases and merge keys (``<<``) work as in PyYAML.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.events import (
    AliasEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceStartEvent,
    StreamEndEvent,
)

MAX_DEPTH = 64

_BaseLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


_TAGS: dict[str, str] = {}  # plain scalar -> resolved tag; resources repeat the same words a lot
_TAGS_MAX = 100_000


class _CalicoLoader(_BaseLoader):  # type: ignore[misc]
    """YAML 1.1 safe loading without sexagesimal numbers (``1:30`` stays a string)."""

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        # A plain scalar's tag depends on its text alone (no path resolvers are registered), so
        # cache it: this is a third of the time of reading a big directory.
        if kind is not yaml.ScalarNode or not implicit[0]:
            return super().resolve(kind, value, implicit)
        tag = _TAGS.get(value)
        if tag is None:
            if len(_TAGS) > _TAGS_MAX:
                _TAGS.clear()
            tag = _TAGS[value] = super().resolve(kind, value, implicit)
        return tag


_CalicoLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers
            if tag not in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")]
    for first, resolvers in _BaseLoader.yaml_implicit_resolvers.items()
}
_CalicoLoader.add_implicit_resolver(
    "tag:yaml.org,2002:int",
    re.compile(r"""^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+)$""", re.X),
    list("-+0123456789"),
)
_CalicoLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?
                   |[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."),
)



_STR = "tag:yaml.org,2002:str"
_NULL = "tag:yaml.org,2002:null"
_BOOL = "tag:yaml.org,2002:bool"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_MERGE: Any = object()  # the value of a ``<<`` key
_NO_KEY: Any = object()
_OTHER_SCALARS = frozenset(f"tag:yaml.org,2002:{name}" for name in ("int", "float", "timestamp", "binary"))


def load_all(text: str) -> Iterator[Any]:
    """Each document of ``text``; raises `yaml.YAMLError` on bad input."""
    loader = _CalicoLoader(text)
    try:
        loader.get_event()  # StreamStart
        while not loader.check_event(StreamEndEvent):
            loader.get_event()  # DocumentStart
            yield _document(loader)
            loader.get_event()  # DocumentEnd
    finally:
        loader.dispose()


def _error(problem: str, event: Any) -> ConstructorError:
    return ConstructorError(None, None, problem, event.start_mark)


class _Collection:
    """A mapping or sequence being built; ``add`` takes each child value in order."""

    def __init__(self, event: Any) -> None:
        self.event = event
        self.items: Any = {} if isinstance(event, MappingStartEvent) else []
        self.key: Any = _NO_KEY
        self.merges: list[dict[Any, Any]] = []

    def add(self, value: Any, event: Any) -> None:
        if value is _MERGE and (isinstance(self.items, list) or self.key is not _NO_KEY):
            raise _error("'<<' (merge) may only be a mapping key", event)
        if isinstance(self.items, list):
            self.items.append(value)
        elif self.key is _NO_KEY:
            if isinstance(value, str) and value in self.items:  # kubectl rejects these too
                raise _error(f"found duplicate key {value!r}", event)
            try:
                hash(value)
            except TypeError:
                raise _error("found an unhashable mapping key", event) from None
            self.key = value
        elif self.key is _MERGE:
            self.key = _NO_KEY
            sources = value if isinstance(value, list) else [value]
            if not all(isinstance(source, dict) for source in sources):
                raise _error("expected a mapping or a list of mappings to merge", event)
            self.merges.extend(reversed(sources))  # the first listed wins, as in PyYAML
        else:
            self.items[self.key], self.key = value, _NO_KEY

    def value(self) -> Any:
        if not self.merges:
            return self.items
        merged: dict[Any, Any] = {}
        for source in self.merges:
            merged.update(source)
        merged.update(self.items)
        return merged


def _document(loader: Any) -> Any:
    anchors: dict[str, Any] = {}
    stack: list[_Collection] = []
    while True:
        event = loader.get_event()
        if isinstance(event, AliasEvent):
            if event.anchor not in anchors:
                raise _error(f"found undefined or recursive alias {event.anchor!r}", event)
            value = anchors[event.anchor]
        elif isinstance(event, ScalarEvent):
            value = _scalar(loader, event)
            if event.anchor is not None:
                anchors[event.anchor] = value
        elif isinstance(event, MappingStartEvent | SequenceStartEvent):
            if event.tag not in (None, "!", _MAP if isinstance(event, MappingStartEvent) else _SEQ):
                raise _error(f"unsupported YAML tag {event.tag}", event)
            if len(stack) >= MAX_DEPTH:
                raise _error(f"nested more than {MAX_DEPTH} levels deep", event)
            stack.append(_Collection(event))
            continue
        else:  # MappingEndEvent | SequenceEndEvent
            done = stack.pop()
            value = done.value()
            if done.event.anchor is not None:
                anchors[done.event.anchor] = value
        if not stack:
            if value is _MERGE:
                raise _error("'<<' (merge) may only be a mapping key", event)
            return value
        stack[-1].add(value, event)


def _scalar(loader: Any, event: Any) -> Any:
    tag = event.tag
    if tag is None or tag == "!":
        tag = loader.resolve(yaml.ScalarNode, event.value, event.implicit)
    if tag == _STR:
        return event.value
    if tag == _NULL:
        return None
    if tag == _BOOL:
        return loader.bool_values[event.value.lower()]
    if tag == _MERGE_TAG:
        return _MERGE
    if tag not in _OTHER_SCALARS:
        raise _error(f"unsupported YAML tag {tag}", event)
    node = yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark, event.style)
    return loader.construct_object(node)


def too_deep(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether collections nest more than ``limit`` levels (checked without recursion)."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        if depth >= limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False
