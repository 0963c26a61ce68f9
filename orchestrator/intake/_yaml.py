"""Strict YAML reading shared by the scope, policy and calendar loaders.

PyYAML silently keeps the last of two equal keys; an announced scope with two ``targets:`` keys
would announce only one of them. This loader refuses duplicates and reports where they are.

A document is read with libyaml's parser (``yaml.CSafeLoader``, ten times faster: a scope of
800 targets in 26 ms instead of 260, read again at every run's start) under the same checks
(duplicate keys, nesting depth, values that cannot be built). Anything it refuses is read again
by the pure-Python loader, whose error names the line and column; so the messages are the same
with or without libyaml.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

__all__ = ["format_location", "load_yaml", "parse_document", "raise_first_error", "read_document"]


_MAX_DEPTH = 64
"""nesting deeper than this is refused (no format of ours needs more than a handful of levels)"""


class _BuildChecks:
    """Values PyYAML cannot build become marked errors (shared by both loaders below).

    PyYAML raises plain ``ValueError`` / ``OverflowError`` for a date that does not exist
    (``2026-02-30``) or an integer of thousands of digits; here each is a marked YAML error
    naming the line.
    """

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)  # type: ignore[misc]
        except (ValueError, OverflowError) as exc:
            shown = node.value if isinstance(node, yaml.ScalarNode) else node.tag
            if isinstance(shown, str) and len(shown) > 40:
                shown = shown[:37] + "..."
            raise yaml.constructor.ConstructorError(
                None, None, f"{shown!r}: {exc}", node.start_mark
            ) from None


class _StrictLoader(_BuildChecks, yaml.SafeLoader):
    """SafeLoader that refuses duplicate mapping keys, deep nesting and values it cannot build
    (``RecursionError`` for thousands of nested levels becomes a marked error too)."""

    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > _MAX_DEPTH:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                problem = f"nested deeper than {_MAX_DEPTH} levels"
                raise yaml.composer.ComposerError(None, None, problem, mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


_FastBase: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _FastStrictLoader(_BuildChecks, _FastBase):  # type: ignore[misc,valid-type]
    """libyaml's parser with :class:`_StrictLoader`'s checks (the nesting depth is measured on
    the composed nodes, since libyaml composes them itself)."""

    def construct_document(self, node: yaml.Node) -> Any:
        _check_depth(node)
        return super().construct_document(node)


def _check_depth(root: yaml.Node) -> None:
    stack: list[tuple[yaml.Node, int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > _MAX_DEPTH:
            problem = f"nested deeper than {_MAX_DEPTH} levels"
            raise yaml.composer.ComposerError(None, None, problem, node.start_mark)
        if isinstance(node, yaml.SequenceNode):
            stack.extend((child, depth + 1) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                stack.append((key, depth + 1))
                stack.append((value, depth + 1))


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    loader.flatten_mapping(node)
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if not isinstance(key, Hashable):
            shape = "list" if isinstance(key, list) else "mapping"
            raise yaml.constructor.ConstructorError(
                None, None, f"a key must be a plain value, not a {shape}", key_node.start_mark
            )
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"duplicate key {key!r} (first at line {seen[key] + 1})",
                key_node.start_mark,
            )
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=deep)


for _loader in (_StrictLoader, _FastStrictLoader):
    _loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_yaml(data: bytes, source: str, error: Callable[[str, str, str], Exception]) -> Any:
    """Parse YAML bytes strictly.

    Args:
        data: the file's bytes.
        source: the file name used in messages.
        error: the error type to raise, called as ``error(file, field, problem)``.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(source, "", f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        return yaml.load(text, Loader=_FastStrictLoader)  # noqa: S506 - a SafeLoader subclass
    except (yaml.YAMLError, RecursionError):
        pass  # read again below: the pure-Python loader's error names the place
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "?"
        raise error(source, where, str(exc.problem or exc)) from None
    except yaml.YAMLError as exc:
        raise error(source, "", f"not valid YAML: {exc}") from None
    except RecursionError:
        raise error(source, "", f"nested deeper than {_MAX_DEPTH} levels") from None


def format_location(loc: tuple[int | str, ...]) -> str:
    """``('targets', 3, 'cidr')`` -> ``targets[3].cidr``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.startswith(("function-", "tagged-union", "json-or-python", "lax-or-strict")):
            continue
        else:
            out += f".{part}" if out else part
    return out


def raise_first_error(
    exc: ValidationError, source: str, error: Callable[[str, str, str], Exception]
) -> Exception:
    """Turn pydantic's first error into our ``FILE: field: problem`` error."""
    first = exc.errors(include_url=False)[0]
    loc = tuple(p for p in first["loc"] if not (isinstance(p, str) and "[" in p))
    field = format_location(loc)
    msg = str(first["msg"]).removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        msg = "unknown key (not part of the format)"
    elif first["type"] == "missing":
        msg = "required key is missing"
    if "input" in first and first["type"] not in ("missing", "extra_forbidden"):
        shown = repr(first["input"])
        if len(shown) <= 60 and shown not in msg:
            msg = f"{shown}: {msg}"
    return error(source, field, msg)


ModelT = TypeVar("ModelT", bound=BaseModel)
FileError = Callable[[str, str, str], Exception]


def parse_document(
    data: bytes, source: str, *, model: type[ModelT], fmt: str, error: FileError, keys: str
) -> ModelT:
    """Parse a versioned YAML document strictly into ``model``.

    Args:
        data: the document's bytes.
        source: the file name used in messages.
        model: the pydantic model (``extra="forbid"``, frozen).
        fmt: the ``format:`` value the document must carry.
        error: the error type raised, as ``error(file, field, problem)``.
        keys: a few top-level keys, for the message when the document is not a mapping.
    """
    raw = load_yaml(data, source, error)
    if not isinstance(raw, dict):
        raise error(source, "", f"the document is a mapping ({keys}, ...)")
    found = raw.get("format")
    if found != fmt:
        raise error(source, "format", f"{found!r}: expected {fmt!r}")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise raise_first_error(exc, source, error) from None


def read_document(path: Path, error: FileError) -> bytes:
    """A document's exact bytes, or ``error(path, "", "cannot read: ...")``."""
    try:
        return path.read_bytes()
    except OSError as exc:
        raise error(str(path), "", f"cannot read: {exc.strerror}") from None
