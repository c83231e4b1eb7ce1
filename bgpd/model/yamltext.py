"""YAML text -> plain Python values, the way calicoctl reads resources, and fast.

YAML 1.1 rules (``yes``/``on`` are booleans, which the loader turns into label strings
``"true"``; calico-semantics.md §1.1), except base-60 numbers: an unquoted community ``65000:10``
stays a string, as Go's YAML library keeps it. libyaml parses; the node -> value step is done here
rather than by PyYAML's generic constructor, which is most of the time for a big cluster.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import yaml

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
_MERGE = "tag:yaml.org,2002:merge"


def load_all(text: str) -> Iterator[Any]:
    """Each document of ``text``; raises `yaml.YAMLError` (or RecursionError) on bad input."""
    loader = _CalicoLoader(text)
    try:
        while loader.check_node():
            yield _Builder(loader).build(loader.get_node())
    finally:
        loader.dispose()


class _Builder:
    """Node -> value for the common tags; anything unusual goes to PyYAML's own constructor."""

    def __init__(self, loader: Any) -> None:
        self.loader = loader
        self.done: dict[int, Any] = {}  # anchors: the same node object -> the same value
        self.busy: set[int] = set()

    def build(self, node: Any) -> Any:
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node)
        key = id(node)
        if key in self.done:
            return self.done[key]
        if key in self.busy:
            raise yaml.constructor.ConstructorError(None, None, "recursive alias", node.start_mark)
        self.busy.add(key)
        if node.tag == _MAP and not any(k.tag == _MERGE for k, _ in node.value):
            value: Any = {}
            for key_node, value_node in node.value:
                item = self.build(key_node)
                if isinstance(item, str) and item in value:  # kubectl rejects these too
                    raise yaml.constructor.ConstructorError(
                        None, None, f"found duplicate key {item!r}", key_node.start_mark)
                try:
                    value[item] = self.build(value_node)
                except TypeError:
                    raise yaml.constructor.ConstructorError(
                        None, None, "found an unhashable mapping key", key_node.start_mark) from None
        elif node.tag == _SEQ:
            value = [self.build(item) for item in node.value]
        else:
            value = self.loader.construct_object(node, deep=True)
        self.busy.discard(key)
        self.done[key] = value
        return value

    def _scalar(self, node: Any) -> Any:
        tag = node.tag
        if tag == _STR:
            return node.value
        if tag == _NULL:
            return None
        if tag == _BOOL:
            return self.loader.bool_values[node.value.lower()]
        return self.loader.construct_object(node, deep=True)
