"""Edits of JSON/YAML-like trees for property tests of parsers: every place in a tree, and a
copy with one place replaced or deleted."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

Path = tuple[Any, ...]


def places(node: Any, path: Path = ()) -> Iterator[Path]:
    """The key path of every place in ``node`` (itself first), through dicts and lists."""
    yield path
    if isinstance(node, dict):
        for key, value in node.items():
            yield from places(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from places(value, (*path, i))


def edited(node: Any, path: Path, value: Any, *, delete: bool = False) -> Any:
    """A copy of ``node`` with the place at ``path`` replaced by ``value`` (or deleted);
    ``node`` itself is left as it was."""
    if not path:
        return value
    copy = dict(node) if isinstance(node, dict) else list(node)
    head = path[0]
    if len(path) == 1 and delete:
        del copy[head]
    else:
        copy[head] = edited(node[head], path[1:], value, delete=delete)
    return copy
