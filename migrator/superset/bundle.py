"""Reading Superset export bundles (v1 ZIPs) and the import errors that name their files.

Pure functions: no HTTP, no Django. Members are read one at a time through ``zipfile``, so
memory stays at the central directory plus one small YAML file, whatever the bundle size.
"""

from __future__ import annotations

import os
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import IO, Any, Literal

import yaml

from migrator.superset.errors import InvalidBundle

PASSWORD_MASK = "XXXXXXXXXX"
TYPE_FOLDERS = ("dashboards", "charts", "datasets", "databases")
SSH_SECRET_FIELDS = ("password", "private_key", "private_key_password")

# A database YAML is a few hundred bytes; the cap keeps a hostile ZIP (or a zip bomb)
# from being inflated into memory.
_MAX_YAML_BYTES = 1024 * 1024

# SQLAlchemy 1.4's own URL pattern for the user-info part (Superset parses URIs with it):
# the password runs to the first "@".
_URI_USERINFO_RE = re.compile(
    r"^(?P<scheme>[\w+]+)://(?:(?P<user>[^:/]*)(?::(?P<password>[^@]*))?@)?"
)


@dataclass(frozen=True)
class BundleDatabase:
    key: str
    """Bundle path without the root folder, e.g. ``databases/analytics.yaml``: the key of
    the ``passwords`` maps on import (the file name is not the database name)."""
    name: str
    uri_masked: str
    needs_password: bool
    uuid: str
    has_ssh_tunnel: bool
    ssh_tunnel_secrets: tuple[str, ...] = ()
    """The masked secrets of the tunnel: a subset of ``SSH_SECRET_FIELDS``."""


@dataclass(frozen=True)
class BundleInfo:
    root: str
    members: list[str]
    counts: dict[str, int]
    databases: list[BundleDatabase]
    total_size: int
    """Uncompressed bytes of all members."""
    compressed_size: int
    bundle_type: str | None = None
    """``type`` from ``metadata.yaml`` (``Dashboard``, ``Database``…), None when absent."""
    version: str | None = None


def split_uri_password(uri: str) -> tuple[str | None, tuple[int, int] | None]:
    """The password of a SQLAlchemy URI and its span, or ``(None, None)``."""
    match = _URI_USERINFO_RE.match(uri)
    if not match or match.group("password") is None:
        return None, None
    return match.group("password"), match.span("password")


def mask_uri(uri: str) -> str:
    """The URI with any password replaced by Superset's mask."""
    password, span = split_uri_password(uri)
    if password is None or span is None or password == PASSWORD_MASK:
        return uri
    return uri[: span[0]] + PASSWORD_MASK + uri[span[1] :]


def inspect_bundle(source: str | os.PathLike[str] | IO[bytes]) -> BundleInfo:
    try:
        with zipfile.ZipFile(source) as archive:
            return _inspect(archive)
    except zipfile.BadZipFile as exc:
        raise InvalidBundle(f"The file is not a ZIP archive ({exc}).") from exc


def _inspect(archive: zipfile.ZipFile) -> BundleInfo:
    files = [info for info in archive.infolist() if not info.is_dir()]
    if not files:
        raise InvalidBundle("The ZIP archive is empty.")
    roots = {info.filename.split("/", 1)[0] for info in files}
    # Superset drops the first path component of every member, so a bundle without a
    # single root folder would be read with the wrong paths.
    if len(roots) != 1 or any("/" not in info.filename for info in files):
        raise InvalidBundle(
            "The ZIP archive is not a Superset export: its files are not all inside one root folder."
        )
    root = roots.pop()
    relative = {info.filename.split("/", 1)[1]: info for info in files}

    counts = dict.fromkeys(TYPE_FOLDERS, 0)
    for path in relative:
        top = path.split("/", 1)[0]
        if top in counts and path.endswith((".yaml", ".yml")):
            counts[top] += 1

    bundle_type = version = None
    if "metadata.yaml" in relative:
        metadata = _load_yaml(archive, relative["metadata.yaml"], "metadata.yaml")
        bundle_type = _optional_str(metadata.get("type"))
        version = _optional_str(metadata.get("version"))

    databases = [
        _database(path, _load_yaml(archive, info, path))
        for path, info in relative.items()
        if path.startswith("databases/") and path.endswith((".yaml", ".yml"))
    ]
    return BundleInfo(
        root=root,
        members=list(relative),
        counts=counts,
        databases=databases,
        total_size=sum(info.file_size for info in files),
        compressed_size=sum(info.compress_size for info in files),
        bundle_type=bundle_type,
        version=version,
    )


def _load_yaml(archive: zipfile.ZipFile, info: zipfile.ZipInfo, path: str) -> dict[str, Any]:
    return load_member(archive, info, path, _MAX_YAML_BYTES)


def load_member(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, path: str, limit: int
) -> dict[str, Any]:
    """One YAML mapping of the bundle, read only up to ``limit`` bytes."""
    with archive.open(info) as member:
        data = member.read(limit + 1)
    if len(data) > limit:
        raise InvalidBundle(f"{path} in the bundle is larger than {limit // 1024} KB.")
    try:
        document = yaml.safe_load(data)
    except yaml.YAMLError as exc:
        raise InvalidBundle(f"{path} in the bundle is not valid YAML.") from exc
    if not isinstance(document, dict):
        raise InvalidBundle(f"{path} in the bundle is not a YAML mapping.")
    return document


def _database(path: str, document: Mapping[str, Any]) -> BundleDatabase:
    uri = str(document.get("sqlalchemy_uri") or "")
    password, _ = split_uri_password(uri)
    tunnel = document.get("ssh_tunnel")
    has_tunnel = isinstance(tunnel, dict)
    return BundleDatabase(
        key=path,
        name=str(document.get("database_name") or ""),
        uri_masked=mask_uri(uri),
        needs_password=password == PASSWORD_MASK,
        uuid=str(document.get("uuid") or ""),
        has_ssh_tunnel=has_tunnel,
        ssh_tunnel_secrets=tuple(
            f for f in SSH_SECRET_FIELDS if has_tunnel and tunnel.get(f) == PASSWORD_MASK
        ),
    )


def _optional_str(value: Any) -> str | None:
    return None if value is None else str(value)


# --- import errors -------------------------------------------------------------------------

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


def strip_fields(
    source: str | os.PathLike[str] | IO[bytes],
    dest: IO[bytes],
    fields: Mapping[str, list[str]],
) -> list[str]:
    """Copy a bundle into ``dest`` without the given fields; return what was removed.

    ``fields`` maps bundle paths (without the root folder) to dotted field
    paths, as ``ImportProblems.unknown_fields`` reports them: an older Superset
    (4.1) refuses the keys a newer one (6.1) exports. Other members are copied
    as they are, a chunk at a time.
    """
    removed: list[str] = []
    with (
        zipfile.ZipFile(source) as archive,
        zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as out,
    ):
        for info in archive.infolist():
            relative = info.filename.split("/", 1)[1] if "/" in info.filename else info.filename
            paths = fields.get(relative)
            if not paths or info.is_dir():
                with archive.open(info) as member, out.open(info.filename, "w") as copy:
                    while chunk := member.read(1 << 16):
                        copy.write(chunk)
                continue
            document = _load_yaml(archive, info, relative)
            for dotted in paths:
                if _delete_path(document, dotted.split(".")):
                    removed.append(f"{relative}: {dotted}")
            out.writestr(
                info.filename, yaml.safe_dump(document, allow_unicode=True, sort_keys=False)
            )
    return removed


def _delete_path(node: Any, parts: list[str]) -> bool:
    for part in parts[:-1]:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return False
    if isinstance(node, dict) and parts[-1] in node:
        del node[parts[-1]]
        return True
    return False
