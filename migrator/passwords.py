"""Turning Superset's "needs a password" into a prompt, and checking the answers.

Secrets never go through Superset's form fields (Superset writes those to its
action log in clear text, SUPERSET_API.md). Each answered database is
imported on its own, the secret inside its YAML, then tested with Superset's
own connection test using the stored password; a wrong one is deleted again.
Once every database exists on the target with the right secret, the dashboard
import needs no password at all. This runs in the web request that received
the answers, so secrets never reach a worker or any table.
"""

from __future__ import annotations

import io
import uuid as uuid_module
import zipfile
from collections import defaultdict
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import quote

import yaml
from django.core.files.storage import default_storage
from django.utils import timezone
from pydantic import BaseModel, Field, ValidationError

from migrator import sessions
from migrator.models import Environment, Promotion
from migrator.plan import databases_needing_secrets, open_conflicts
from migrator.promote import MAX_STRIPS
from migrator.superset import versions
from migrator.superset.bundle import (
    PASSWORD_MASK,
    BundleInfo,
    mask_uri,
    split_uri_password,
    strip_fields,
)
from migrator.superset.errors import (
    ConnectionTestFailed,
    ImportRejected,
    SupersetAPIError,
    SupersetError,
)
from migrator.superset.problems import ImportProblems
from tasks_app import kinds
from tasks_app.kinds import field_id
from tasks_app.models import InputRequest, Task
from tasks_app.tasklog import TaskLog, redact

# need kind -> (label, input widget, max length)
FIELD_TYPES: dict[str, tuple[str, str, int]] = {
    "password": ("Database password", "secret", 1024),
    "ssh_password": ("SSH tunnel password", "secret", 1024),
    "ssh_private_key": ("SSH private key", "secret_multiline", 16384),
    "ssh_private_key_password": ("SSH private key password", "secret", 1024),
    "overwrite": ("Overwrite what already exists on the target", "confirm", 0),
    "conflict": ("A dashboard of the target's own has this slug", "choice", 0),
}
# test_connection's error types that mean "it answered and refused the credentials".
WRONG_PASSWORD_ERRORS = {
    "CONNECTION_INVALID_PASSWORD_ERROR",
    "CONNECTION_ACCESS_DENIED_ERROR",
    "CONNECTION_INVALID_USERNAME_ERROR",
}
# A database's masked tunnel secret (bundle key) -> the field type that asks for it.
SSH_TYPES = {
    "password": "ssh_password",
    "private_key": "ssh_private_key",
    "private_key_password": "ssh_private_key_password",
}
# How the resume API and --secrets-file group answers: group name -> field type.
ANSWER_GROUPS = {
    "passwords": "password",
    "ssh_tunnel_passwords": "ssh_password",
    "ssh_tunnel_private_keys": "ssh_private_key",
    "ssh_tunnel_private_key_passwords": "ssh_private_key_password",
}
GROUP_OF_TYPE = {kind: group for group, kind in ANSWER_GROUPS.items()}

SSH_FIELD = {
    "ssh_password": "password",
    "ssh_private_key": "private_key",
    "ssh_private_key_password": "private_key_password",
}


class Answers(BaseModel):
    """A migration's answers as the resume API and ``--secrets-file`` send them, keyed
    by Superset's bundle path, e.g. ``{"passwords": {"databases/analytics.yaml": "…"}}``."""

    passwords: dict[str, str] = Field(default_factory=dict)
    ssh_tunnel_passwords: dict[str, str] = Field(default_factory=dict)
    ssh_tunnel_private_keys: dict[str, str] = Field(default_factory=dict)
    ssh_tunnel_private_key_passwords: dict[str, str] = Field(default_factory=dict)
    overwrite: bool = False
    conflicts: dict[str, Literal["rename", "take_over", "skip"]] = Field(
        default_factory=dict,
        description="Dashboard uuid (the `key` of a `conflict` field) -> rename, take_over or skip",
    )


def parse_answers(request: InputRequest, data: Mapping[str, Any]) -> dict[str, Any]:
    """The one reader of a migration's answers -> {field id: value}: the groups of
    ``Answers`` (a script's JSON, a secrets file) and field ids (the web form, the
    terminal). Raises ValueError for a body that is neither, naming where, never what
    was sent (it may be a password)."""
    flat = {k: v for k, v in data.items() if ":" in k}
    try:
        grouped = Answers.model_validate({k: v for k, v in data.items() if ":" not in k})
    except ValidationError as exc:
        where = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
            for err in exc.errors(include_input=False, include_url=False)
        )
        raise ValueError(where) from None
    answers = kinds.answers_by_field_id(request, flat)
    for group, kind in ANSWER_GROUPS.items():
        answers.update({f"{kind}:{key}": value for key, value in getattr(grouped, group).items()})
        getattr(grouped, group).clear()
    answers.update({f"conflict:{key}": value for key, value in grouped.conflicts.items()})
    if grouped.overwrite:
        answers.update({field_id(f): True for f in request.fields if f["type"] == "overwrite"})
    return answers


def answer_key(fid: str) -> str:
    """A field id as a script names it in the answers: ``passwords.databases/x.yaml``."""
    kind, _, key = fid.partition(":")
    if kind == "overwrite":
        return "overwrite"
    return f"{GROUP_OF_TYPE.get(kind, kind)}.{key}"


def field_info(field: Mapping[str, Any]) -> dict[str, Any]:
    """What a field is about: its connection (name, masked URI) or its dashboard."""
    if field["type"] == "conflict":
        return {
            "subject": field.get("dashboard"),
            "detail": f"slug {field.get('slug')!r}",
            **{k: field[k] for k in ("dashboard", "slug", "target_dashboard") if k in field},
        }
    return {
        "subject": field.get("database_name"),
        "detail": field.get("uri_masked"),
        "database_name": field.get("database_name"),
        "uri_masked": field.get("uri_masked"),
    }


def _readable(key: str) -> str:
    """A bundle path as a person reads it: ``dashboards/Public_3.yaml`` -> ``The
    dashboard “Public 3”`` (never a file path in what people read)."""
    folder, _, file = key.rpartition("/")
    kind = folder.rsplit("/", 1)[-1].removesuffix("s") or "asset"
    name = file.rsplit(".", 1)[0].replace("_", " ").strip() or key
    return f"The {kind} “{name}”"


def can_ask(problems: ImportProblems) -> bool:
    return problems.fixable_by_input and all(n.kind in FIELD_TYPES for n in problems.needs)


def input_fields(problems: ImportProblems, info: BundleInfo) -> list[dict[str, Any]]:
    databases = {db.key: db for db in info.databases}
    fields = []
    for need in problems.needs:
        label, widget, max_length = FIELD_TYPES[need.kind]
        db = databases.get(need.key)
        field: dict[str, Any] = {
            "key": need.key,
            "type": need.kind,
            "label": label,
            "input": widget,
            "max_length": max_length,
            "database_name": db.name if db else None,
            "uri_masked": db.uri_masked if db else None,
        }
        if need.kind == "ssh_private_key_password":
            field["allow_empty"] = True  # a key without passphrase still asks (send "")
        if need.kind == "overwrite":
            field["label"] = f"{_readable(need.key)} already exists on the target: overwrite it?"
        fields.append(field)
    return fields


def plan_fields(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """Everything a plan needs from a person before its first write, asked at once."""
    fields: list[dict[str, Any]] = []
    for db in databases_needing_secrets(plan):
        kinds = (["password"] if db["needs_password"] else []) + [
            SSH_TYPES[s] for s in db["ssh_secrets"] if s in SSH_TYPES
        ]
        verb = "replaces" if db["action"] == "replace" else "creates"
        for kind in kinds:
            label, widget, max_length = FIELD_TYPES[kind]
            fields.append(
                {
                    "key": db["path"],
                    "type": kind,
                    "label": label,
                    "input": widget,
                    "max_length": max_length,
                    "database_name": db["name"],
                    "uri_masked": db["uri_masked"],
                    "replace": db["action"] == "replace",
                    "allow_empty": kind == "ssh_private_key_password",
                    "question": f"the secrets of the connections it {verb}",
                }
            )
    for dash in open_conflicts(plan):
        theirs = dash["conflict"]
        fields.append(
            {
                "key": dash["uuid"],
                "type": "conflict",
                "label": f"“{dash['name']}”: the target already has its own dashboard "
                f"“{theirs['name']}” with the slug {dash['slug']!r}.",
                "input": "choice",
                "options": [
                    ["rename", "Import it as a new dashboard under another slug"],
                    ["take_over", f"Take the target's “{theirs['name']}” over (it is replaced)"],
                    ["skip", "Skip this dashboard (the target's stays as it is)"],
                ],
                "dashboard": dash["name"],
                "slug": dash["slug"],
                "target_dashboard": theirs,
                "question": "what to do about dashboards whose slug is taken",
            }
        )
    return fields


def _database_bundle(
    bundle_name: str,
    key: str,
    secrets: dict[str, str],
    *,
    trial: bool = False,
    release: str | None = None,
    existing: bool = False,
    uuid: str | None = None,
) -> tuple[bytes, dict]:
    """A ``type: Database`` bundle with this database's secrets inside its YAML, and
    that YAML (for its uuid and name); a ``trial`` copy under a uuid and name of its own;
    under ``uuid`` instead of its own when given (same name). Written as the target's
    ``release`` (a family, when known) takes it.

    The password goes in the YAML's ``password`` key, beside the masked URI: every
    release stores it as a password, as long as the target has no connection of the
    bundle's uuid yet (it puts the stored password in place of the key then). So only to
    change an ``existing`` connection's password on a release that masks a URI's
    password (5.0 and newer) does it go into the URI. 4.1 keeps a URI as it is given,
    password in clear, and shows it back: there it always goes in the key (see
    ``_check_database`` for an existing uuid)."""
    with default_storage.open(bundle_name, "rb") as saved, zipfile.ZipFile(saved) as archive:
        member = next(n for n in archive.namelist() if n.split("/", 1)[-1] == key)
        root = member.split("/", 1)[0]
        document = yaml.safe_load(archive.read(member))
    if release:
        document = versions.adapt("databases", document, release)
    if trial:
        document["uuid"] = str(uuid_module.uuid4())
        document["database_name"] = f"{document['database_name']} (checking {document['uuid'][:8]})"
    elif uuid:
        document["uuid"] = uuid
    if "password" in secrets:
        uri = document["sqlalchemy_uri"]
        current, span = split_uri_password(uri)
        if existing and versions.masks_uri_password(release) and current == PASSWORD_MASK and span:
            document["sqlalchemy_uri"] = (
                uri[: span[0]] + quote(secrets["password"], safe="") + uri[span[1] :]
            )
        else:
            document["password"] = secrets["password"]
    for kind, name in SSH_FIELD.items():
        if kind in secrets:
            document.setdefault("ssh_tunnel", {})[name] = secrets[kind]
    metadata = {"version": "1.0.0", "type": "Database", "timestamp": timezone.now().isoformat()}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as out:
        out.writestr(f"{root}/metadata.yaml", yaml.safe_dump(metadata))
        out.writestr(f"{root}/{key}", yaml.safe_dump(document, allow_unicode=True))
    return buffer.getvalue(), document


def _check_database(
    client: Any,
    bundle_name: str,
    key: str,
    secrets: dict[str, str],
    *,
    replace: bool = False,
    trial: bool = False,
    release: str | None = None,
) -> str:
    """Create (or, when ``replace``, overwrite) the database on the target with
    ``secrets`` and test it; '' when right. A ``trial`` copy is deleted either way.

    Replacing on a release that would keep a password written into the URI in clear
    (4.1, or one not known) puts it in the YAML's ``password`` key, which Superset takes
    only for a uuid it does not have yet. When the target's connection already has the
    bundle's uuid, the bundle goes first under a stand-in uuid: Superset matches the
    connection by name, takes the password and the stand-in uuid; the second import
    (the bundle's own uuid, unknown again) gives it its uuid back."""
    if replace:
        # Tested first on a copy of its own (another uuid and name), so a wrong answer
        # never leaves the target's connection replaced.
        problem = _check_database(client, bundle_name, key, secrets, trial=True, release=release)
        if problem:
            return problem
    existing = replace and not trial
    data, document = _database_bundle(
        bundle_name, key, secrets, trial=trial, release=release, existing=existing
    )
    uuid, name = document["uuid"], document["database_name"]
    uri_masked = mask_uri(str(document.get("sqlalchemy_uri") or ""))
    tunnel = bool(document.get("ssh_tunnel"))
    document.clear()  # it holds the secrets
    bundles = [data]
    if existing and not versions.masks_uri_password(release) and client.find_database(uuid):
        stand_in, document = _database_bundle(
            bundle_name,
            key,
            secrets,
            release=release,
            uuid=str(uuid_module.uuid4()),
        )
        document.clear()
        bundles.insert(0, stand_in)
    try:
        while bundles:
            data = bundles.pop(0)
            for attempt in range(MAX_STRIPS + 1):
                try:
                    client.import_databases(io.BytesIO(data), overwrite=replace)
                    break
                except ImportRejected as exc:
                    if not (exc.problems.only_unknown_fields and attempt < MAX_STRIPS):
                        raise
                    # An older target (4.1, 5.0) refuses keys a newer source wrote.
                    stripped = io.BytesIO()
                    strip_fields(io.BytesIO(data), stripped, exc.problems.unknown_fields)
                    data = stripped.getvalue()
    except SupersetError as exc:
        if (
            isinstance(exc, SupersetAPIError)
            and exc.status == 500
            and not tunnel
            and versions.connects_on_import(release)
        ):
            # 4.1 and 5.0 connect while importing and answer a bare 500 when they cannot.
            return _why_not_connected(client, uri_masked, release)
        return f"Superset refused it: {exc.message}"
    finally:
        del data
        bundles.clear()
    row = client.find_database(uuid)
    if row is None:
        return "Superset did not create the database; check the target's permissions."
    connection = client.get_database_connection(row["id"])
    extra = {"ssh_tunnel": connection["ssh_tunnel"]} if connection.get("ssh_tunnel") else {}
    try:
        # Masked whatever Superset shows: a password in a test's body lands in its action log.
        client.test_database_connection(name, mask_uri(connection["sqlalchemy_uri"]), **extra)
    except ConnectionTestFailed as exc:
        if not replace:  # just created, used by nothing: gone again
            client.delete_database(row["id"])
        return f"Wrong: {exc.message}"
    if trial:
        client.delete_database(row["id"])
    return ""


def _empty_tunnel_secrets(
    per_database: dict[str, dict[str, str]], release: str | None
) -> dict[str, str]:
    """An empty SSH password or private key is never right: 6.0 would store it as it is
    (the tunnel then fails later), 6.1 refuses it, 4.1 and 5.0 answer a bare 500."""
    stored = " Superset 6.0 would store it empty and the tunnel would fail later." * (
        release == "6.0"
    )
    return {
        f"{kind}:{key}": f"Empty: the SSH tunnel needs its {kind.removeprefix('ssh_').replace('_', ' ')}."
        + stored
        for key, secrets in per_database.items()
        for kind in ("ssh_password", "ssh_private_key")
        if kind in secrets and not secrets[kind].strip()
    }


def _why_not_connected(client: Any, uri_masked: str, release: str | None) -> str:
    """Superset (4.1, 5.0) refused a new connection with a bare 500, which it answers when
    it cannot connect with the password given. Tell a wrong password from a database it
    cannot reach: ask it to connect with the mask as the password (no secret travels,
    and a failed test leaves nothing in Superset's action log)."""
    named = f"Superset {release}" if release else "Superset"
    tried = (
        f"{named} refused to create the connection with a bare HTTP 500, as it does when it "
        "cannot connect while importing"
    )
    try:
        client.test_database_connection(None, uri_masked)
    except ConnectionTestFailed as exc:
        if exc.error_type in WRONG_PASSWORD_ERRORS:
            # Never "password: …": the log's redaction hides what follows such a key.
            return (
                f"The password is wrong. {tried}; the database answers and refuses a wrong "
                "password, so this one is wrong."
            )
        return (
            f"{tried}. Without the password it says: {exc.message} So the database may be "
            "unreachable from Superset, or the password wrong."
        )
    except SupersetError as exc:
        return f"{tried}; checking why failed too: {exc.message}"
    return f"{tried}, though the database takes connections without this password."


def answer(task: Task, request: InputRequest, given: dict[str, Any]) -> dict[str, str]:
    """The migration kind's answer hook (see tasks_app.engine.answer)."""
    fields = {field_id(f): f for f in request.fields}
    log = TaskLog(
        task,
        secrets=[
            v
            for fid, v in given.items()
            if isinstance(v, str) and FIELD_TYPES[fields[fid]["type"]][1].startswith("secret")
        ],
    )
    errors: dict[str, str] = {}

    if any(fields[fid]["type"] == "overwrite" for fid in given):
        _update_params(task, overwrite=True)
        log.info("Overwrite confirmed: what already exists on the target will be replaced.")
    conflicts = {
        fields[fid]["key"]: value
        for fid, value in given.items()
        if fields[fid]["type"] == "conflict"
    }
    if conflicts:
        _update_params(task, conflicts={**(task.params.get("conflicts") or {}), **conflicts})
        for key, value in conflicts.items():
            log.info(f"{fields['conflict:' + key]['dashboard']}: {value.replace('_', ' ')}.")

    per_database: dict[str, dict[str, str]] = defaultdict(dict)
    replacing: set[str] = set()
    for fid, value in given.items():
        field = fields[fid]
        if field["type"] not in ("overwrite", "conflict"):
            per_database[field["key"]][field["type"]] = value
            if field.get("replace"):
                replacing.add(field["key"])
    if not per_database:
        return errors
    release = (Promotion.of(task).plan or {}).get("release")
    empty = _empty_tunnel_secrets(per_database, release)
    if empty:
        for secrets in per_database.values():
            secrets.clear()
        return {**errors, **empty}

    target = Environment.from_ref(task.params["target"])
    bundle_name = task.checkpoint.get("bundle")
    if target is None or not bundle_name or not default_storage.exists(bundle_name):
        reason = (
            "The target environment was deleted."
            if target is None
            else "The saved bundle is gone: retry the task."
        )
        return {
            fid: reason for fid in given if fields[fid]["type"] not in ("overwrite", "conflict")
        }

    names = {f["key"]: f.get("database_name") or f["key"] for f in request.fields}
    created: list[str] = []
    try:
        with sessions.borrow(target) as client:
            for key, secrets in per_database.items():
                # Superset's message could quote what it was sent: never show a secret back.
                problem = redact(
                    _check_database(
                        client,
                        bundle_name,
                        key,
                        secrets,
                        replace=key in replacing,
                        release=release,
                    ),
                    secrets.values(),
                )
                ids = [f"{kind}:{key}" for kind in secrets]
                if problem:
                    log.warning(f"The answer for {names[key]} ({key}) was not accepted: {problem}")
                    errors.update(dict.fromkeys(ids, problem))
                else:
                    created.append(key)
                    log.info(
                        f"{names[key]} ({key}) now exists on {target.name}; its connection test passed."
                    )
    except SupersetError as exc:
        log.error(f"Could not check the answers on {target.name}: {exc.message}")
        for key, secrets in per_database.items():
            for kind in secrets:
                errors.setdefault(
                    f"{kind}:{key}", f"Could not check it on {target.name}: {exc.message}"
                )
    finally:
        for secrets in per_database.values():
            secrets.clear()
        if created:
            done = task.params.get("created_databases") or []
            _update_params(task, created_databases=sorted({*done, *created}))
    return errors


def _update_params(task: Task, **changes: Any) -> None:
    params = dict(task.params, **changes)
    Task.objects.filter(pk=task.pk).update(params=params)
    task.params = params
