"""The findings catalogue: rule texts and legal references, loaded strictly from a YAML file.

The file (``format: rio.findings/v1``) holds two lists, ``references`` and ``rules``. Unknown or
missing keys, duplicate ids, unknown severities or kinds, and rule refs that name no reference are
refused with a :class:`CatalogueError` that names the file, the field and the problem. The result
is frozen, so a loaded catalogue cannot drift while a run uses it.
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

__all__ = [
    "CATALOGUE_FORMAT",
    "KINDS",
    "SEVERITIES",
    "Catalogue",
    "CatalogueError",
    "Reference",
    "Rule",
    "load_catalogue",
    "parse_catalogue",
]

CATALOGUE_FORMAT = "rio.findings/v1"
#: severities in rising order
SEVERITIES: tuple[str, ...] = ("info", "low", "medium", "high", "critical")
KINDS: tuple[str, ...] = ("risk", "violation")

_TOP_KEYS = frozenset({"format", "version", "references", "rules"})
_REF_KEYS = ("id", "instrument", "text_version", "article", "title", "note")
_RULE_KEYS = ("id", "title", "severity", "kind", "remediation", "refs")
_PACKAGED = "catalogue.yaml"


class CatalogueError(ValueError):
    """The catalogue file is malformed; says which file, which field and what is wrong."""

    def __init__(self, file: str, field: str, problem: str) -> None:
        super().__init__(f"{file}: {field}: {problem}")
        self.file = file
        self.field = field
        self.problem = problem


@dataclass(frozen=True, kw_only=True, slots=True)
class Reference:
    """A legal provision a rule relates to, with the text version it was read from."""

    id: str
    instrument: str
    text_version: str
    article: str
    title: str
    note: str

    def to_json(self) -> dict[str, str]:
        return {
            "id": self.id,
            "instrument": self.instrument,
            "text_version": self.text_version,
            "article": self.article,
            "title": self.title,
            "note": self.note,
        }


@dataclass(frozen=True, kw_only=True, slots=True)
class Rule:
    """One kind of finding: its title, severity, kind, remediation and reference ids."""

    id: str
    title: str
    severity: str
    kind: str
    remediation: str
    refs: tuple[str, ...]


@dataclass(frozen=True, kw_only=True, slots=True)
class Catalogue:
    """A loaded catalogue: read-only maps of rules and references by id."""

    format: str
    version: str
    source: str
    references: Mapping[str, Reference]
    rules: Mapping[str, Rule]

    def rule(self, rule_id: str) -> Rule:
        """The rule ``rule_id``.

        Raises:
            CatalogueError: the catalogue has no such rule.
        """
        try:
            return self.rules[rule_id]
        except KeyError:
            raise CatalogueError(self.source, f"rules[id={rule_id}]", "no such rule") from None

    def resolved_refs(self, rule: Rule) -> tuple[Mapping[str, str], ...]:
        """The rule's references as read-only dicts, in the rule's order."""
        return tuple(MappingProxyType(self.references[r].to_json()) for r in rule.refs)


def _text(file: str, field: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise CatalogueError(file, field, f"must be a non-empty string, got {value!r}")
    return value


def _entry(file: str, where: str, raw: object, keys: tuple[str, ...]) -> Mapping[str, Any]:
    if not isinstance(raw, dict):
        raise CatalogueError(file, where, f"must be a mapping, got {type(raw).__name__}")
    unknown = sorted(str(k) for k in raw if k not in keys)
    if unknown:
        raise CatalogueError(file, f"{where}.{unknown[0]}", f"unknown key (allowed: {list(keys)})")
    missing = [k for k in keys if k not in raw]
    if missing:
        raise CatalogueError(file, f"{where}.{missing[0]}", "missing")
    return raw


def _references(file: str, raw: object) -> dict[str, Reference]:
    if not isinstance(raw, list):
        raise CatalogueError(file, "references", "must be a list")
    references: dict[str, Reference] = {}
    for index, item in enumerate(raw):
        where = f"references[{index}]"
        entry = _entry(file, where, item, _REF_KEYS)
        fields = {k: _text(file, f"{where}.{k}", entry[k]) for k in _REF_KEYS}
        if fields["id"] in references:
            raise CatalogueError(file, f"{where}.id", f"duplicate reference id {fields['id']!r}")
        references[fields["id"]] = Reference(**fields)
    return references


def _rules(file: str, raw: object, references: Mapping[str, Reference]) -> dict[str, Rule]:
    if not isinstance(raw, list):
        raise CatalogueError(file, "rules", "must be a list")
    rules: dict[str, Rule] = {}
    for index, item in enumerate(raw):
        where = f"rules[{index}]"
        entry = _entry(file, where, item, _RULE_KEYS)
        rule_id = _text(file, f"{where}.id", entry["id"])
        if rule_id in rules:
            raise CatalogueError(file, f"{where}.id", f"duplicate rule id {rule_id!r}")
        severity = entry["severity"]
        if severity not in SEVERITIES:
            raise CatalogueError(
                file, f"{where}.severity", f"{severity!r} is not one of {', '.join(SEVERITIES)}"
            )
        kind = entry["kind"]
        if kind not in KINDS:
            raise CatalogueError(
                file, f"{where}.kind", f"{kind!r} is not one of {', '.join(KINDS)}"
            )
        refs = entry["refs"]
        if not isinstance(refs, list):
            raise CatalogueError(file, f"{where}.refs", "must be a list of reference ids")
        for ref_index, ref in enumerate(refs):
            if ref not in references:
                raise CatalogueError(
                    file, f"{where}.refs[{ref_index}]", f"{ref!r} names no reference"
                )
        rules[rule_id] = Rule(
            id=rule_id,
            title=_text(file, f"{where}.title", entry["title"]),
            severity=str(severity),
            kind=str(kind),
            remediation=_text(file, f"{where}.remediation", entry["remediation"]),
            refs=tuple(str(r) for r in refs),
        )
    return rules


def parse_catalogue(text: str, source: str) -> Catalogue:
    """Parse catalogue YAML text; ``source`` names the file in error messages.

    Raises:
        CatalogueError: the text is not a valid ``rio.findings/v1`` catalogue.
    """
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CatalogueError(source, "(document)", f"not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise CatalogueError(source, "(document)", "must be a mapping")
    unknown = sorted(str(k) for k in raw if k not in _TOP_KEYS)
    if unknown:
        raise CatalogueError(source, unknown[0], f"unknown key (allowed: {sorted(_TOP_KEYS)})")
    for key in sorted(_TOP_KEYS):
        if key not in raw:
            raise CatalogueError(source, key, "missing")
    if raw["format"] != CATALOGUE_FORMAT:
        raise CatalogueError(source, "format", f"{raw['format']!r} is not {CATALOGUE_FORMAT!r}")
    version = _text(source, "version", raw["version"])
    references = _references(source, raw["references"])
    rules = _rules(source, raw["rules"], references)
    return Catalogue(
        format=CATALOGUE_FORMAT,
        version=version,
        source=source,
        references=MappingProxyType(references),
        rules=MappingProxyType(rules),
    )


def load_catalogue(path: Path | None = None) -> Catalogue:
    """Load a findings catalogue.

    Args:
        path: a catalogue file; ``None`` loads the one packaged with rio.

    Returns:
        The frozen catalogue.

    Raises:
        CatalogueError: the file cannot be read or is not a valid catalogue.
    """
    if path is None:
        resource = importlib.resources.files("probes.findings").joinpath(_PACKAGED)
        return parse_catalogue(resource.read_text(encoding="utf-8"), f"probes/findings/{_PACKAGED}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CatalogueError(str(path), "(file)", f"cannot be read: {exc}") from exc
    return parse_catalogue(text, str(path))
