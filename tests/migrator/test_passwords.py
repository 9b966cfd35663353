"""Every recorded shape of Superset's "needs input" 422 becomes the right prompt."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from migrator.passwords import _empty_tunnel_secrets, _why_not_connected, can_ask, input_fields
from migrator.superset.bundle import BundleDatabase, BundleInfo
from migrator.superset.errors import ConnectionTestFailed
from migrator.superset.problems import parse_import_error
from tasks_app.tasklog import redact

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "superset"
ISSUES = [
    {"code": 1010, "message": "Issue 1010 - Superset encountered an error while running a command."}
]
PW = {"_schema": ["Must provide a password for the database"]}


def _recorded(name: str) -> dict:
    return json.loads(json.loads((FIXTURES / f"{name}.json").read_text())["body"])


def _body(extra: dict, message: str = "Error importing dashboard") -> dict:
    return {
        "errors": [
            {
                "message": message,
                "error_type": "GENERIC_COMMAND_ERROR",
                "level": "warning",
                "extra": {**extra, "issue_codes": ISSUES},
            }
        ]
    }


def _db(key: str, name: str, uri: str) -> BundleDatabase:
    return BundleDatabase(
        key=key,
        name=name,
        uri_masked=uri,
        needs_password=True,
        uuid="u-" + name,
        has_ssh_tunnel=False,
    )


INFO = BundleInfo(
    root="dashboard_export_x",
    members=[],
    counts={},
    databases=[
        _db(
            "databases/analytics.yaml",
            "analytics",
            "postgresql://report_user:XXXXXXXXXX@127.0.0.1:5432/analytics",
        ),
        _db(
            "databases/warehouse.yaml",
            "warehouse",
            "postgresql://wh:XXXXXXXXXX@127.0.0.1:5432/warehouse",
        ),
        _db("databases/tunnel_key.yaml", "tunnel", "postgresql://t:XXXXXXXXXX@10.0.0.5:5432/t"),
    ],
    total_size=0,
    compressed_size=0,
)

CASES = {
    "recorded 6.1, one database": (
        lambda: _recorded("import_422_missing_password"),
        [("databases/analytics.yaml", "password")],
    ),
    "recorded 6.1, two databases": (
        lambda: _recorded("import_422_missing_two_passwords"),
        [("databases/analytics.yaml", "password"), ("databases/warehouse.yaml", "password")],
    ),
    "recorded 6.1, already exists": (
        lambda: _recorded("import_422_already_exists"),
        [("dashboards/Sales_1.yaml", "overwrite")],
    ),
    "4.1, one database (no detail in message)": (
        lambda: _body({"databases/analytics.yaml": PW}),
        [("databases/analytics.yaml", "password")],
    ),
    "4.1, two databases": (
        lambda: _body({"databases/analytics.yaml": PW, "databases/warehouse.yaml": PW}),
        [("databases/analytics.yaml", "password"), ("databases/warehouse.yaml", "password")],
    ),
    "SSH key tunnel, nothing sent": (
        lambda: _body(
            {
                "databases/tunnel_key.yaml": {
                    "_schema": [
                        "Must provide a password for the database",
                        "Must provide a private key for the ssh tunnel",
                        "Must provide a private key password for the ssh tunnel",
                    ]
                }
            }
        ),
        [
            ("databases/tunnel_key.yaml", "password"),
            ("databases/tunnel_key.yaml", "ssh_private_key"),
            ("databases/tunnel_key.yaml", "ssh_private_key_password"),
        ],
    ),
    "SSH password tunnel": (
        lambda: _body(
            {
                "databases/tunnel_key.yaml": {
                    "_schema": ["Must provide a password for the ssh tunnel"]
                }
            }
        ),
        [("databases/tunnel_key.yaml", "ssh_password")],
    ),
    "mixed: password and already exists": (
        lambda: _body(
            {
                "databases/warehouse.yaml": PW,
                "dashboards/Sales_1.yaml": "Dashboard already exists and `overwrite=true` was not passed",
            }
        ),
        [("databases/warehouse.yaml", "password"), ("dashboards/Sales_1.yaml", "overwrite")],
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_each_input_needed_422_becomes_a_prompt(case):
    make_body, expected = CASES[case]
    problems = parse_import_error(make_body())
    assert can_ask(problems)
    fields = input_fields(problems, INFO)
    got = sorted((f["key"], f["type"]) for f in fields)
    assert got == sorted(expected)
    for field in fields:
        if field["type"] == "overwrite":
            assert field["input"] == "confirm"
            assert "overwrite" in field["label"]
            continue
        db = next(d for d in INFO.databases if d.key == field["key"])
        assert field["database_name"] == db.name
        assert "XXXXXXXXXX" in field["uri_masked"]
        assert field["input"] == (
            "secret_multiline" if field["type"] == "ssh_private_key" else "secret"
        )


def test_the_recorded_two_database_422_asks_for_both():
    fields = input_fields(parse_import_error(_recorded("import_422_missing_two_passwords")), INFO)
    assert {f["key"] for f in fields} == {"databases/analytics.yaml", "databases/warehouse.yaml"}
    assert {f["type"] for f in fields} == {"password"}


def test_a_key_without_passphrase_may_be_answered_empty():
    problems = parse_import_error(
        _body(
            {
                "databases/tunnel_key.yaml": {
                    "_schema": ["Must provide a private key password for the ssh tunnel"]
                }
            }
        )
    )
    (field,) = input_fields(problems, INFO)
    assert field["allow_empty"] is True


@pytest.mark.parametrize(
    "body",
    [
        _body({"dashboards/Ops_2.yaml": {"theme_uuid": ["Unknown field."]}}),
        _body({}, message="Cannot have multiple credentials for the SSH Tunnel"),
        _body({"databases/analytics.yaml": PW, "datasets/x.yaml": {"folders": ["Unknown field."]}}),
    ],
)
def test_problems_no_input_can_fix_are_not_prompts(body):
    assert not can_ask(parse_import_error(body))


def test_secrets_travel_inside_the_database_yaml(tmp_path, settings):
    import io
    import zipfile

    import yaml
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    from migrator.passwords import _database_bundle

    document = {
        "database_name": "tunnel",
        "sqlalchemy_uri": "postgresql://t:XXXXXXXXXX@10.0.0.5:5432/t",
        "uuid": "u-1",
        "ssh_tunnel": {
            "server_address": "gw",
            "server_port": 22,
            "username": "me",
            "private_key": "XXXXXXXXXX",
        },
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("export_1/metadata.yaml", "version: 1.0.0\ntype: Dashboard\n")
        archive.writestr("export_1/databases/tunnel.yaml", yaml.safe_dump(document))
        archive.writestr("export_1/dashboards/d.yaml", "dashboard_title: d\n")
    name = default_storage.save("bundles/t.zip", ContentFile(buffer.getvalue()))

    data, _ = _database_bundle(
        name,
        "databases/tunnel.yaml",
        {
            "password": "p@ss/w:rd",
            "ssh_private_key": "-----KEY-----\n",
            "ssh_private_key_password": "",
        },
    )
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert sorted(archive.namelist()) == [
            "export_1/databases/tunnel.yaml",
            "export_1/metadata.yaml",
        ]
        assert yaml.safe_load(archive.read("export_1/metadata.yaml"))["type"] == "Database"
        db = yaml.safe_load(archive.read("export_1/databases/tunnel.yaml"))
    # A new connection: the password beside the masked URI (4.1 would keep a URI's in clear).
    assert db["sqlalchemy_uri"] == "postgresql://t:XXXXXXXXXX@10.0.0.5:5432/t"
    assert db["password"] == "p@ss/w:rd"
    assert db["ssh_tunnel"]["private_key"] == "-----KEY-----\n"
    assert db["ssh_tunnel"]["private_key_password"] == ""

    # Replacing an existing one on 5.0 and newer: only a password in the URI changes it
    # (they store it as a password and mask the URI).
    for release in ("5.0", "6.0", "6.1"):
        data, _ = _database_bundle(
            name, "databases/tunnel.yaml", {"password": "p@ss"}, existing=True, release=release
        )
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            db = yaml.safe_load(archive.read("export_1/databases/tunnel.yaml"))
        assert db["sqlalchemy_uri"] == "postgresql://t:p%40ss@10.0.0.5:5432/t"
        assert "password" not in db
    # 4.1 (or a release not known) would keep a URI's password in clear: the key, always.
    for release in ("4.1", None):
        data, _ = _database_bundle(
            name, "databases/tunnel.yaml", {"password": "p@ss"}, existing=True, release=release
        )
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            db = yaml.safe_load(archive.read("export_1/databases/tunnel.yaml"))
        assert db["sqlalchemy_uri"] == "postgresql://t:XXXXXXXXXX@10.0.0.5:5432/t"
        assert db["password"] == "p@ss"


ANALYTICS = {
    "database_name": "analytics",
    "sqlalchemy_uri": "postgresql://report_user:XXXXXXXXXX@127.0.0.1:5432/analytics",
    "uuid": "5e3d1c0a-0000-4000-8000-000000000001",
    "extra": {},
}


def _saved_bundle() -> str:
    import io
    import zipfile

    import yaml
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("export_1/metadata.yaml", "version: 1.0.0\ntype: Dashboard\n")
        archive.writestr("export_1/databases/analytics.yaml", yaml.safe_dump(ANALYTICS))
    return default_storage.save("bundles/replace.zip", ContentFile(buffer.getvalue()))


class _Target:
    """A target that has "analytics" (id 7), optionally under the bundle's own uuid, and
    records each database import's YAML, what each connection test was sent and the uuid
    of each database deleted."""

    def __init__(self, own_uuid: bool) -> None:
        self.uuids = {7: ANALYTICS["uuid"] if own_uuid else "their-own-uuid"}
        self.imports: list[tuple[dict, bool]] = []
        self.tested: list[str] = []
        self.deleted: list[str] = []

    def import_databases(self, bundle, overwrite):
        import zipfile

        import yaml

        with zipfile.ZipFile(bundle) as archive:
            (member,) = [n for n in archive.namelist() if "/databases/" in n]
            document = yaml.safe_load(archive.read(member))
        self.imports.append((document, overwrite))
        if document["database_name"] == ANALYTICS["database_name"]:
            self.uuids[7] = document["uuid"]  # Superset matches the name, takes the uuid
        else:
            self.uuids[100 + len(self.imports)] = document["uuid"]

    def find_database(self, uuid):
        ids = [i for i, u in self.uuids.items() if u == uuid]
        return {"id": ids[0]} if ids else None

    def get_database_connection(self, database_id):
        return {"sqlalchemy_uri": ANALYTICS["sqlalchemy_uri"]}

    def test_database_connection(self, name, uri, **extra):
        self.tested.append(uri)

    def delete_database(self, database_id):
        self.deleted.append(self.uuids.pop(database_id))


@pytest.mark.parametrize(
    ("own_uuid", "imports"),
    # The same uuid: first under a stand-in uuid, so that 4.1 takes the key; then its own.
    [(True, 2), (False, 1)],
    ids=["same-uuid", "their-uuid"],
)
def test_replacing_on_41_never_writes_the_password_into_the_uri(db, settings, own_uuid, imports):
    """4.1 keeps a password written into an imported URI in clear (and shows it back);
    it takes the YAML's password key only for a uuid it does not have yet."""
    from migrator.passwords import _check_database

    target = _Target(own_uuid)
    problem = _check_database(
        target,
        _saved_bundle(),
        "databases/analytics.yaml",
        {"password": "n3w/p@ss"},
        replace=True,
        release="4.1",
    )

    assert problem == ""
    trial, *replaced = target.imports
    assert trial[0]["database_name"].startswith("analytics (checking ")
    for document, overwrite in replaced:
        assert overwrite
        assert document["database_name"] == "analytics"
        assert document["sqlalchemy_uri"] == ANALYTICS["sqlalchemy_uri"]  # masked
        assert document["password"] == "n3w/p@ss"
    uuids = [document["uuid"] for document, _ in replaced]
    assert len(uuids) == imports
    assert uuids[-1] == ANALYTICS["uuid"] and uuids.count(ANALYTICS["uuid"]) == 1
    assert trial[0]["uuid"] not in uuids
    assert target.deleted == [trial[0]["uuid"]]  # the trial copy, and nothing else
    assert not any("n3w" in uri or "%2F" in uri for uri in target.tested)


@pytest.mark.parametrize("release", ["5.0", "6.0", "6.1"])
def test_replacing_on_50_and_newer_writes_the_password_into_the_uri_once(db, settings, release):
    """They move a URI's password to their password store (and ignore the key for a uuid
    they have): one import, no stand-in."""
    from migrator.passwords import _check_database

    target = _Target(own_uuid=True)
    problem = _check_database(
        target,
        _saved_bundle(),
        "databases/analytics.yaml",
        {"password": "n3w/p@ss"},
        replace=True,
        release=release,
    )

    assert problem == ""
    _trial, (document, overwrite) = target.imports
    assert overwrite and document["uuid"] == ANALYTICS["uuid"]
    assert document["sqlalchemy_uri"] == (
        "postgresql://report_user:n3w%2Fp%40ss@127.0.0.1:5432/analytics"
    )
    assert "password" not in document


def test_a_connection_test_never_sends_a_password_superset_shows_back(db, settings):
    """Were a release to show a stored password in clear, the test still sends the mask
    (a test's body lands in Superset's action log)."""
    from migrator.passwords import _check_database

    target = _Target(own_uuid=False)
    target.get_database_connection = lambda database_id: {
        "sqlalchemy_uri": "postgresql://report_user:n3w@127.0.0.1:5432/analytics"
    }
    _check_database(
        target,
        _saved_bundle(),
        "databases/analytics.yaml",
        {"password": "n3w"},
        release="4.1",
    )
    assert target.tested == [ANALYTICS["sqlalchemy_uri"]]


class _Probe:
    """A target's test_connection, as 4.1/5.0 answer it (JSON body, HTTP 500)."""

    def __init__(self, error_type: str | None, message: str = "") -> None:
        self.error_type, self.message, self.sent = error_type, message, []

    def test_database_connection(self, name, uri, **extra):
        self.sent.append((name, uri))
        if self.error_type:
            raise ConnectionTestFailed(self.message, status=500, error_type=self.error_type)


MASKED = "postgresql://mig_secure:XXXXXXXXXX@127.0.0.1:5432/mig_public"


def test_a_bare_500_is_a_wrong_password_when_the_database_refuses_the_mask():
    probe = _Probe("CONNECTION_INVALID_PASSWORD_ERROR", "password authentication failed")
    said = _why_not_connected(probe, MASKED, "5.0")
    assert said.startswith("The password is wrong. Superset 5.0 refused to create the connection")
    assert probe.sent == [(None, MASKED)]  # the mask, never the answer
    assert redact(said) == said  # shown and logged as it is, nothing taken for a secret


def test_a_bare_500_from_an_unreachable_database_says_what_was_tried():
    probe = _Probe("CONNECTION_HOST_DOWN_ERROR", "The host might be down.")
    said = _why_not_connected(probe, MASKED, "4.1")
    assert not said.startswith("The password is wrong")
    assert redact(said) == said
    assert "bare HTTP 500" in said and "The host might be down." in said
    assert "unreachable" in said


def test_an_empty_ssh_password_is_refused_and_said_why_on_60():
    answers = {
        "databases/t.yaml": {"ssh_password": " ", "password": "x"},
        "databases/k.yaml": {"ssh_private_key": "KEY", "ssh_private_key_password": ""},
    }
    errors = _empty_tunnel_secrets(answers, "6.0")
    assert list(errors) == ["ssh_password:databases/t.yaml"]  # an empty passphrase is fine
    assert "6.0 would store it empty" in errors["ssh_password:databases/t.yaml"]
    assert "6.0" not in _empty_tunnel_secrets(answers, "6.1")["ssh_password:databases/t.yaml"]
