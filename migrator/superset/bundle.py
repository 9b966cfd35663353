"""Reading Superset export bundles (v1 ZIPs), and rewriting them without given fields.

Pure functions: no HTTP, no Django. Members are read one at a time through ``zipfile``, so
memory stays at the central directory plus one small YAML file, whatever the bundle size.
"""

from __future__ import annotations

import os
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO, Any

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


# --- removing fields a target does not know ---------------------------------------------


def strip_fields(
    source: str | os.PathLike[str] | IO[bytes],
    dest: IO[bytes],
    fields: Mapping[str, list[str]],
) -> list[str]:
    """Copy a bundle into ``dest`` without the given fields; return what was removed.

    ``fields`` maps bundle paths (without the root folder) to dotted field
    paths, as ``problems.ImportProblems.unknown_fields`` reports them: an older Superset
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
