"""Classifying Superset's import 422 answers per bundle path.

Pure functions: no HTTP, no Django, and nothing about reading bundles: ``bundle`` reads
ZIPs, ``errors`` raises ``ImportRejected`` with the ``ImportProblems`` made here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

NeedKind = Literal[
    "password",
    "ssh_password",
    "ssh_private_key",
    "ssh_private_key_password",
    "masked_encrypted_extra",
    "overwrite",
]

# Superset's own import screen recognises exactly these sentences (ImportModal).
_NEED_MESSAGES: dict[str, NeedKind] = {
    "Must provide a password for the database": "password",
    "Must provide a password for the ssh tunnel": "ssh_password",
    "Must provide a private key for the ssh tunnel": "ssh_private_key",
    "Must provide a private key password for the ssh tunnel": "ssh_private_key_password",
}
_MASKED_EXTRA_PREFIX = "Must provide value for masked_encrypted_extra field"
_UNKNOWN_FIELD = "Unknown field."


@dataclass(frozen=True)
class InputNeed:
    key: str
    kind: NeedKind


@dataclass
class ImportProblems:
    message: str
    needs: list[InputNeed] = field(default_factory=list)
    others: list[tuple[str | None, str]] = field(default_factory=list)
    """``(bundle path or None when Superset named no file, message)``."""
    unknown_fields: dict[str, list[str]] = field(default_factory=dict)
    """Bundle path → dotted field paths Superset reported as ``Unknown field.`` (a bundle
    from a newer Superset); those are in ``others`` too."""

    @property
    def fixable_by_input(self) -> bool:
        return bool(self.needs) and not self.others

    @property
    def only_unknown_fields(self) -> bool:
        """Every problem that is not a need is a field the target does not know."""
        unknown = sum(len(paths) for paths in self.unknown_fields.values())
        return unknown > 0 and unknown == len(self.others)

    def keys_needing(self, kind: NeedKind) -> list[str]:
        return [need.key for need in self.needs if need.kind == kind]

    def describe(self) -> str:
        parts = [f"{need.key} needs {_NEED_LABELS[need.kind]}" for need in self.needs]
        parts += [f"{key}: {message}" if key else message for key, message in self.others]
        return "; ".join(parts) or self.message


_NEED_LABELS: dict[NeedKind, str] = {
    "password": "a database password",
    "ssh_password": "an SSH tunnel password",
    "ssh_private_key": "an SSH tunnel private key",
    "ssh_private_key_password": "an SSH tunnel private key password",
    "masked_encrypted_extra": "the masked encrypted extra values",
    "overwrite": "overwrite (it already exists on the target)",
}


def parse_import_error(body: Mapping[str, Any]) -> ImportProblems:
    """Classify an import 422 per bundle path.

    Only ``errors[0].extra`` is read: Superset 4.1's ``message`` is just "Error importing
    dashboard", without the detail 6.1 appends.
    """
    errors = body.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        first = errors[0]
        message = str(first.get("message") or "")
        extra = first.get("extra") if isinstance(first.get("extra"), dict) else {}
    else:
        # Superset 1.x answered {"message": {path: {...}}}.
        legacy = body.get("message")
        extra = legacy if isinstance(legacy, dict) else {}
        message = legacy if isinstance(legacy, str) else "Error importing"

    problems = ImportProblems(message=message)
    for key, value in extra.items():
        if key == "issue_codes":
            continue
        _classify(problems, str(key), value)
    if not problems.needs and not problems.others:
        # e.g. "Cannot have multiple credentials for the SSH Tunnel": no file named.
        problems.others.append((None, message or "Superset refused the import without saying why."))
    return problems


def _classify(problems: ImportProblems, key: str, value: Any) -> None:
    if isinstance(value, str):
        if "already exists" in value:
            problems.needs.append(InputNeed(key, "overwrite"))
        else:
            problems.others.append((key, value))
        return
    if not isinstance(value, dict):
        problems.others.append((key, str(value)))
        return
    for field_name, detail in value.items():
        if field_name == "_schema" and isinstance(detail, list):
            for item in detail:
                kind = _need_kind(item)
                if kind is None:
                    problems.others.append((key, str(item)))
                elif InputNeed(key, kind) not in problems.needs:
                    problems.needs.append(InputNeed(key, kind))
            continue
        for path, text in _leaves(detail, str(field_name)):
            problems.others.append((key, f"{path}: {text}"))
            if text == _UNKNOWN_FIELD:
                problems.unknown_fields.setdefault(key, []).append(path)


def _need_kind(item: Any) -> NeedKind | None:
    if not isinstance(item, str):
        return None
    if item in _NEED_MESSAGES:
        return _NEED_MESSAGES[item]
    if item.startswith(_MASKED_EXTRA_PREFIX):
        return "masked_encrypted_extra"
    return None


def _leaves(node: Any, path: str) -> list[tuple[str, str]]:
    """``{"columns": {"0": {"x": ["Unknown field."]}}}`` → ``[("columns.0.x", "Unknown field.")]``."""
    if isinstance(node, dict):
        return [leaf for key, child in node.items() for leaf in _leaves(child, f"{path}.{key}")]
    if isinstance(node, list):
        if all(isinstance(item, str) for item in node):
            return [(path, " ".join(node))]
        return [
            leaf for index, child in enumerate(node) for leaf in _leaves(child, f"{path}.{index}")
        ]
    return [(path, str(node))]
