"""Reading Superset export bundles (v1 ZIPs), and rewriting them without given fields.

Pure functions: no HTTP, no Django. Members are read one at a time through ``zipfile``, so
memory stays at the central directory plus one small YAML file, whatever the bundle size.
A bundle is checked against ``Limits`` before anything in it is parsed: its size, its
number of files (from the ZIP's end record, before ``zipfile`` reads the directory), their
total uncompressed size, and each YAML file's size; a YAML file with an anchor or an alias
is refused before it is built.
"""

from __future__ import annotations

import os
import re
import struct
import zipfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import IO, Any, ClassVar

import yaml

from migrator.superset.errors import BundleTooLarge, InvalidBundle, YAMLAliasRefused

PASSWORD_MASK = "XXXXXXXXXX"
TYPE_FOLDERS = ("dashboards", "charts", "datasets", "databases")
SSH_SECRET_FIELDS = ("password", "private_key", "private_key_password")

MB = 1024 * 1024
# A central directory entry is 46 bytes and a name (Superset's are under 300): more than
# this on average is not a Superset export, and zipfile would hold all of it in memory.
_DIRECTORY_BYTES_PER_MEMBER = 512


@dataclass(frozen=True)
class Limits:
    """What the app accepts from a Superset: the defaults of the settings of the same
    names (README, "Configuration"); ``names`` maps a field to the setting that sets it,
    so that an error can say what to change."""

    max_bundle_bytes: int = 256 * MB
    """An export's size on the wire and on disk, and its files' total uncompressed size."""
    max_members: int = 5000
    """Files in a bundle."""
    max_yaml_bytes: int = 10 * MB
    """One YAML file of a bundle."""
    call_deadline: float = 300.0
    """Seconds one call to Superset may take in all: connect, headers and the whole body."""
    names: Mapping[str, str] = field(default_factory=dict, compare=False, hash=False)

    SETTINGS: ClassVar[dict[str, str]] = {
        "max_bundle_bytes": "SUPERSET_MAX_BUNDLE_BYTES",
        "max_members": "SUPERSET_MAX_BUNDLE_MEMBERS",
        "max_yaml_bytes": "SUPERSET_MAX_YAML_BYTES",
        "call_deadline": "SUPERSET_CALL_DEADLINE",
    }

    @classmethod
    def from_settings(cls, settings: Any) -> Limits:
        """From an object with the settings as attributes (Django's ``settings``); a
        missing one keeps its default."""
        values = {
            name: getattr(settings, setting)
            for name, setting in cls.SETTINGS.items()
            if getattr(settings, setting, None) is not None
        }
        return cls(**values, names=dict(cls.SETTINGS))

    def hint(self, name: str) -> str:
        """`` (SETTING)`` when the limit came from a setting, else nothing."""
        setting = self.names.get(name)
        return f" ({setting})" if setting else ""


DEFAULT_LIMITS = Limits()


def size_text(size: int) -> str:
    """``size`` bytes for a person: ``256 MB``, ``1.5 MB``, ``512 KB``, ``12 bytes``."""
    for unit, name in ((MB, "MB"), (1024, "KB")):
        if size >= unit:
            return f"{size / unit:,.1f}".removesuffix(".0") + f" {name}"
    return f"{size:,} bytes"


def shown(path: str) -> str:
    """A member's name fit for a sentence: a ZIP may name a file with anything."""
    path = "".join(c if c.isprintable() else "\ufffd" for c in path)
    return path if len(path) <= 200 else path[:200] + "…"


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


def inspect_bundle(
    source: str | os.PathLike[str] | IO[bytes], limits: Limits = DEFAULT_LIMITS
) -> BundleInfo:
    with open_bundle(source, limits) as archive:
        return _inspect(archive, limits)


@contextmanager
def open_bundle(
    source: str | os.PathLike[str] | IO[bytes], limits: Limits = DEFAULT_LIMITS
) -> Iterator[zipfile.ZipFile]:
    """The bundle as a ``ZipFile``, once it is known to be within ``limits``: its size, its
    number of files and their total uncompressed size. Nothing in it is read yet."""
    with _binary(source) as fileobj:
        _check_end_record(fileobj, limits)
        try:
            archive = zipfile.ZipFile(fileobj)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError) as exc:
            raise InvalidBundle(f"The file is not a ZIP archive ({exc}).") from exc
        with archive:
            infos = archive.infolist()
            if len(infos) > limits.max_members:
                raise _too_many(len(infos), limits)
            total = sum(info.file_size for info in infos)
            if total > limits.max_bundle_bytes:
                raise BundleTooLarge(
                    f"The bundle's files add up to {size_text(total)} uncompressed, more than the "
                    f"{size_text(limits.max_bundle_bytes)} allowed"
                    f"{limits.hint('max_bundle_bytes')}."
                )
            yield archive


@contextmanager
def _binary(source: str | os.PathLike[str] | IO[bytes]) -> Iterator[IO[bytes]]:
    if isinstance(source, str | os.PathLike):
        with open(source, "rb") as fileobj:
            yield fileobj
    else:
        yield source


def _too_many(count: int, limits: Limits) -> BundleTooLarge:
    return BundleTooLarge(
        f"The bundle has {count:,} files, more than the {limits.max_members:,} allowed"
        f"{limits.hint('max_members')}; a Superset export of a few dashboards has hundreds."
    )


_END = b"PK\x05\x06"
_END64 = b"PK\x06\x06"
_END64_LOCATOR = b"PK\x06\x07"


def _check_end_record(fileobj: IO[bytes], limits: Limits) -> None:
    """Refuse a ZIP by its size and its end record alone: how many files it says it has
    and how large its directory is (``zipfile`` reads all of the directory into memory,
    whatever the count says)."""
    start = fileobj.tell()
    size = fileobj.seek(0, os.SEEK_END) - start
    if size > limits.max_bundle_bytes:
        raise BundleTooLarge(
            f"The bundle is {size_text(size)}, more than the {size_text(limits.max_bundle_bytes)} "
            f"allowed{limits.hint('max_bundle_bytes')}."
        )
    tail_size = min(size, 22 + 65535)
    fileobj.seek(start + size - tail_size)
    tail = fileobj.read(tail_size)
    fileobj.seek(start)
    at = tail.rfind(_END)
    if at < 0 or len(tail) < at + 22:
        return  # not a ZIP: zipfile says so
    entries, directory_size = struct.unpack("<HI", tail[at + 10 : at + 16])
    if entries == 0xFFFF or directory_size == 0xFFFFFFFF:
        # ZIP64: the real numbers are in the record the locator (right before) points at.
        locator = at - 20
        record = locator - 56
        if (
            record >= 0
            and tail[locator : locator + 4] == _END64_LOCATOR
            and tail[record : record + 4] == _END64
        ):
            entries, directory_size = struct.unpack("<QQ", tail[record + 32 : record + 48])
    if entries > limits.max_members:
        raise _too_many(entries, limits)
    if directory_size > limits.max_members * _DIRECTORY_BYTES_PER_MEMBER:
        raise BundleTooLarge(
            f"The bundle's ZIP directory is {size_text(directory_size)}: more than "
            f"{limits.max_members:,} files{limits.hint('max_members')} would need."
        )


def _inspect(archive: zipfile.ZipFile, limits: Limits) -> BundleInfo:
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
        metadata = load_member(archive, relative["metadata.yaml"], "metadata.yaml", limits)
        bundle_type = _optional_str(metadata.get("type"))
        version = _optional_str(metadata.get("version"))

    # A database YAML is a few hundred bytes.
    small = limits if limits.max_yaml_bytes <= MB else replace(limits, max_yaml_bytes=MB)
    databases = [
        _database(path, load_member(archive, info, path, small))
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


def load_member(
    archive: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    path: str,
    limits: Limits = DEFAULT_LIMITS,
) -> dict[str, Any]:
    """One YAML mapping of the bundle, read only up to ``limits.max_yaml_bytes``."""
    limit = limits.max_yaml_bytes
    try:
        with archive.open(info) as member:
            data = member.read(limit + 1)
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        NotImplementedError,
        OSError,
        EOFError,
    ) as exc:
        raise InvalidBundle(f"{shown(path)} in the bundle cannot be read ({exc}).") from exc
    if len(data) > limit:
        raise BundleTooLarge(
            f"{shown(path)} in the bundle is larger than {size_text(limit)}"
            f"{limits.hint('max_yaml_bytes')}."
        )
    document = parse_yaml(data, path)
    if not isinstance(document, dict):
        raise InvalidBundle(f"{shown(path)} in the bundle is not a YAML mapping.")
    return document


# libyaml when PyYAML was built with it: several times faster on a large dashboard.
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# Superset's documents nest a dozen levels at most. libyaml's composer recurses without a
# limit (a 100 KB "[[[[…" crashes the process) and PyYAML's own hits Python's.
MAX_YAML_DEPTH = 100


def parse_yaml(data: bytes | str, path: str) -> Any:
    """A YAML document of a bundle, refused when it uses an anchor or an alias.

    Superset writes its exports with ``yaml.safe_dump`` of fresh objects: no anchors, no
    aliases. A hostile bundle uses aliases to expand a few hundred bytes into gigabytes
    (each alias is the whole aliased value again), so the document's events are read
    first, and it is built only when none has an anchor and it nests at most
    ``MAX_YAML_DEPTH`` levels.
    """
    depth = 0
    try:
        for event in yaml.parse(data, Loader=_Loader):
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_YAML_DEPTH:
                    raise InvalidBundle(
                        f"{shown(path)} in the bundle nests more than {MAX_YAML_DEPTH} levels "
                        f"deep (line {event.start_mark.line + 1}); Superset's exports never do."
                    )
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
            if isinstance(event, yaml.NodeEvent) and event.anchor is not None:
                name = str(event.anchor)
                raise YAMLAliasRefused(
                    f"{shown(path)} in the bundle uses YAML anchors or aliases "
                    f"({'*' if isinstance(event, yaml.AliasEvent) else '&'}{shown(name)[:40]}, "
                    f"line {event.start_mark.line + 1}); Superset's exports never do, so the "
                    "bundle is refused."
                )
        return yaml.load(data, Loader=_Loader)  # noqa: S506 - a safe loader, aliases refused above
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        raise InvalidBundle(f"{shown(path)} in the bundle is not valid YAML{line}.") from exc


class _PlainDumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # libyaml: ~4× faster
    """Writes an object met twice in full again, never as ``&id001`` / ``*id001``: the
    bundles we write are read back with aliases refused, as Superset's own are."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def dump_yaml(document: Any) -> str:
    return yaml.dump(document, Dumper=_PlainDumper, allow_unicode=True, sort_keys=False)


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
    limits: Limits = DEFAULT_LIMITS,
) -> list[str]:
    """Copy a bundle into ``dest`` without the given fields; return what was removed.

    ``fields`` maps bundle paths (without the root folder) to dotted field
    paths, as ``problems.ImportProblems.unknown_fields`` reports them: an older Superset
    (4.1) refuses the keys a newer one (6.1) exports. Other members are copied
    as they are, a chunk at a time.
    """
    removed: list[str] = []
    with (
        open_bundle(source, limits) as archive,
        zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as out,
    ):
        for info in archive.infolist():
            relative = info.filename.split("/", 1)[1] if "/" in info.filename else info.filename
            paths = fields.get(relative)
            if not paths or info.is_dir():
                copy_member(archive, info, out, info.filename)
                continue
            document = load_member(archive, info, relative, limits)
            for dotted in paths:
                if _delete_path(document, dotted.split(".")):
                    removed.append(f"{relative}: {dotted}")
            out.writestr(info.filename, dump_yaml(document))
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


def copy_member(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, out: zipfile.ZipFile, name: str
) -> None:
    """One member of ``archive`` into ``out`` as ``name``, as it is, a chunk at a time."""
    with archive.open(info) as member, out.open(name, "w") as copy:
        while chunk := member.read(1 << 16):
            copy.write(chunk)
