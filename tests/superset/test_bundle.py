"""Reading export bundles and classifying import 422s (bodies as recorded in SUPERSET_API.md)."""

from __future__ import annotations

import tracemalloc
import zipfile
from typing import Any

import pytest

from migrator.superset.bundle import BundleDatabase, inspect_bundle, mask_uri
from migrator.superset.errors import InvalidBundle
from migrator.superset.problems import InputNeed, parse_import_error

ISSUE_1010 = [
    {
        "code": 1010,
        "message": "Issue 1010 - Superset encountered an error while running a command.",
    }
]
PASSWORD_NEEDED = {"_schema": ["Must provide a password for the database"]}
ALREADY_EXISTS = "Dashboard already exists and `overwrite=true` was not passed"

SSH_TUNNEL_KEY = """\
ssh_tunnel:
  server_address: 127.0.0.1
  server_port: 2222
  username: tunnel
  private_key: XXXXXXXXXX
  private_key_password: XXXXXXXXXX
"""


def error_body(extra: dict[str, Any], message: str = "Error importing dashboard") -> dict[str, Any]:
    return {
        "errors": [
            {
                "message": message,
                "error_type": "GENERIC_COMMAND_ERROR",
                "level": "warning",
                "extra": {**extra, "issue_codes": ISSUE_1010},
            }
        ]
    }


# --- inspect_bundle -------------------------------------------------------------------


@pytest.fixture
def export(make_bundle, database_yaml):
    return make_bundle(
        {
            "dashboards/Ops_2.yaml": "dashboard_title: Ops\n",
            "charts/Open_Shipments_2.yaml": "slice_name: Open Shipments\n",
            "charts/Stock_Units_3.yaml": "slice_name: Stock Units\n",
            "datasets/analytics/shipments_2.yaml": "table_name: shipments\n",
            "datasets/warehouse/inventory_3.yaml": "table_name: inventory\n",
            "databases/analytics.yaml": database_yaml(
                "analytics",
                "postgresql://report_user:XXXXXXXXXX@127.0.0.1:5432/analytics",
                "b0c8cc23-6c8b-5f51-a672-2c6173d5a2ed",
            ),
            "databases/public_data.yaml": database_yaml(
                "public_data",
                "postgresql://public_reader@127.0.0.1:5432/public_data",
                "11111111-2222-3333-4444-555555555555",
            ),
            "databases/2.yaml": database_yaml(
                "Склад",
                "postgresql://sklad:XXXXXXXXXX@127.0.0.1:5432/sklad",
                "22222222-2222-3333-4444-555555555555",
                SSH_TUNNEL_KEY,
            ),
        }
    )


def test_it_reads_the_root_members_and_counts(export) -> None:
    info = inspect_bundle(export)
    assert info.root == "dashboard_export_20261129T044608"
    assert "metadata.yaml" in info.members
    assert "datasets/analytics/shipments_2.yaml" in info.members
    assert not any(m.startswith(info.root) for m in info.members)
    assert info.counts == {"dashboards": 1, "charts": 2, "datasets": 2, "databases": 3}
    assert info.bundle_type == "Dashboard"
    assert info.version == "1.0.0"
    with zipfile.ZipFile(export) as archive:
        assert info.total_size == sum(i.file_size for i in archive.infolist())


def test_it_lists_databases_keyed_by_file_not_by_name(export) -> None:
    databases = {db.key: db for db in inspect_bundle(export).databases}
    assert databases["databases/analytics.yaml"] == BundleDatabase(
        key="databases/analytics.yaml",
        name="analytics",
        uri_masked="postgresql://report_user:XXXXXXXXXX@127.0.0.1:5432/analytics",
        needs_password=True,
        uuid="b0c8cc23-6c8b-5f51-a672-2c6173d5a2ed",
        has_ssh_tunnel=False,
    )
    public = databases["databases/public_data.yaml"]
    assert public.needs_password is False
    assert public.uri_masked == "postgresql://public_reader@127.0.0.1:5432/public_data"
    sklad = databases["databases/2.yaml"]
    assert sklad.name == "Склад"
    assert sklad.needs_password is True
    assert sklad.has_ssh_tunnel is True
    assert sklad.ssh_tunnel_secrets == ("private_key", "private_key_password")


def test_it_never_reports_a_clear_password(make_bundle, database_yaml) -> None:
    path = make_bundle(
        {
            "databases/handmade.yaml": database_yaml(
                "handmade", "postgresql://u:pl4in-text@db:5432/x", "3"
            )
        }
    )
    (db,) = inspect_bundle(path).databases
    assert db.uri_masked == "postgresql://u:XXXXXXXXXX@db:5432/x"
    assert db.needs_password is False
    assert "pl4in" not in repr(inspect_bundle(path))


def test_it_reads_a_file_object(export) -> None:
    with open(export, "rb") as fileobj:
        info = inspect_bundle(fileobj)
    assert info.counts["databases"] == 3


def test_it_reads_a_database_only_bundle(make_bundle, database_yaml) -> None:
    path = make_bundle(
        {"databases/a.yaml": database_yaml("a", "postgresql://u:XXXXXXXXXX@h/a", "u-1")},
        root="database_export_20261129T050000",
        bundle_type="Database",
    )
    info = inspect_bundle(path)
    assert info.bundle_type == "Database"
    assert [db.key for db in info.databases] == ["databases/a.yaml"]


def test_it_reads_a_large_bundle_in_little_memory(make_bundle, database_yaml) -> None:
    path = make_bundle({"databases/a.yaml": database_yaml("a", "postgresql://u@h/a", "u")})
    big = "dashboard_export_20261129T044608/dashboards/Big_1.yaml"
    with zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED) as archive, archive.open(big, "w") as out:
        for _ in range(40):
            out.write(b"position_json: " + b"x" * (1024 * 1024))
    tracemalloc.start()
    try:
        info = inspect_bundle(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.total_size > 40 * 1024 * 1024
    assert peak < 2 * 1024 * 1024


def test_it_refuses_an_oversized_database_yaml(make_bundle) -> None:
    path = make_bundle({"databases/a.yaml": "extra: " + "x" * (2 * 1024 * 1024)})
    with pytest.raises(InvalidBundle, match=r"databases/a\.yaml"):
        inspect_bundle(path)


def test_it_refuses_a_file_that_is_not_a_zip(tmp_path) -> None:
    path = tmp_path / "random.zip"
    path.write_bytes(b"not a zip at all")
    with pytest.raises(InvalidBundle, match="not a ZIP"):
        inspect_bundle(path)


def test_it_refuses_members_outside_one_root_folder(make_bundle) -> None:
    path = make_bundle({"dashboards/a.yaml": "x: 1\n"}, root=None)
    with pytest.raises(InvalidBundle, match="one root folder"):
        inspect_bundle(path)


def test_it_refuses_a_database_yaml_that_does_not_parse(make_bundle) -> None:
    path = make_bundle({"databases/a.yaml": "database_name: [unclosed\n"})
    with pytest.raises(InvalidBundle, match="not valid YAML"):
        inspect_bundle(path)


@pytest.mark.parametrize(
    ("uri", "masked"),
    [
        ("postgresql://u:p@h/d", "postgresql://u:XXXXXXXXXX@h/d"),
        (
            "postgresql+psycopg2://u:XXXXXXXXXX@h:5432/d",
            "postgresql+psycopg2://u:XXXXXXXXXX@h:5432/d",
        ),
        ("postgresql://u@h/d", "postgresql://u@h/d"),
        ("postgresql://u:p%40ss@h/d", "postgresql://u:XXXXXXXXXX@h/d"),
        ("trino://h:8080/cat", "trino://h:8080/cat"),
    ],
)
def test_it_masks_uri_passwords_like_superset(uri: str, masked: str) -> None:
    assert mask_uri(uri) == masked


# --- parse_import_error ---------------------------------------------------------------


def test_it_reads_one_missing_password() -> None:
    body = error_body(
        {"databases/analytics.yaml": PASSWORD_NEEDED},
        message="Error importing dashboard: databases/analytics.yaml: "
        "{'_schema': ['Must provide a password for the database']}",
    )
    problems = parse_import_error(body)
    assert problems.needs == [InputNeed("databases/analytics.yaml", "password")]
    assert problems.others == []
    assert problems.fixable_by_input is True
    assert problems.message.startswith("Error importing dashboard: databases/analytics.yaml")


def test_it_reads_two_missing_passwords() -> None:
    problems = parse_import_error(
        error_body(
            {
                "databases/analytics.yaml": PASSWORD_NEEDED,
                "databases/warehouse.yaml": PASSWORD_NEEDED,
            }
        )
    )
    assert problems.keys_needing("password") == [
        "databases/analytics.yaml",
        "databases/warehouse.yaml",
    ]
    assert problems.fixable_by_input


def test_it_reads_already_exists_as_an_overwrite_need() -> None:
    problems = parse_import_error(error_body({"dashboards/Sales_1.yaml": ALREADY_EXISTS}))
    assert problems.needs == [InputNeed("dashboards/Sales_1.yaml", "overwrite")]
    assert problems.fixable_by_input


def test_it_reads_mixed_problems_from_one_answer() -> None:
    problems = parse_import_error(
        error_body(
            {
                "databases/analytics.yaml": PASSWORD_NEEDED,
                "databases/tunnel_key.yaml": {
                    "_schema": [
                        "Must provide a password for the database",
                        "Must provide a private key for the ssh tunnel",
                        "Must provide a private key password for the ssh tunnel",
                    ]
                },
                "databases/tunnel_pw.yaml": {
                    "_schema": ["Must provide a password for the ssh tunnel"]
                },
                "databases/bigquery.yaml": {
                    "_schema": [
                        "Must provide value for masked_encrypted_extra field: "
                        "$.credentials_info.private_key"
                    ]
                },
                "dashboards/Sales_1.yaml": ALREADY_EXISTS,
            }
        )
    )
    assert [(n.key, n.kind) for n in problems.needs] == [
        ("databases/analytics.yaml", "password"),
        ("databases/tunnel_key.yaml", "password"),
        ("databases/tunnel_key.yaml", "ssh_private_key"),
        ("databases/tunnel_key.yaml", "ssh_private_key_password"),
        ("databases/tunnel_pw.yaml", "ssh_password"),
        ("databases/bigquery.yaml", "masked_encrypted_extra"),
        ("dashboards/Sales_1.yaml", "overwrite"),
    ]
    assert problems.fixable_by_input
    assert "databases/tunnel_pw.yaml needs an SSH tunnel password" in problems.describe()


def test_it_reads_the_41_answer_from_extra_only() -> None:
    body = error_body({"databases/analytics.yaml": PASSWORD_NEEDED})
    problems = parse_import_error(body)
    assert problems.message == "Error importing dashboard"
    assert problems.needs == [InputNeed("databases/analytics.yaml", "password")]


def test_it_reports_unknown_fields_as_not_fixable_by_input() -> None:
    problems = parse_import_error(
        error_body(
            {
                "dashboards/Ops_2.yaml": {"theme_uuid": ["Unknown field."]},
                "databases/analytics.yaml": {
                    "configuration_method": ["Unknown field."],
                    "impersonate_user": ["Unknown field."],
                },
                "datasets/analytics/shipments.yaml": {
                    "columns": {"0": {"datetime_format": ["Unknown field."]}},
                    "currency_code_column": ["Unknown field."],
                    "folders": ["Unknown field."],
                },
            }
        )
    )
    assert problems.needs == []
    assert not problems.fixable_by_input
    assert ("dashboards/Ops_2.yaml", "theme_uuid: Unknown field.") in problems.others
    assert problems.unknown_fields == {
        "dashboards/Ops_2.yaml": ["theme_uuid"],
        "databases/analytics.yaml": ["configuration_method", "impersonate_user"],
        "datasets/analytics/shipments.yaml": [
            "columns.0.datetime_format",
            "currency_code_column",
            "folders",
        ],
    }


def test_it_makes_a_password_need_unfixable_when_mixed_with_other_problems() -> None:
    problems = parse_import_error(
        error_body(
            {
                "databases/analytics.yaml": PASSWORD_NEEDED,
                "metadata.yaml": {"type": ["Must be equal to Dashboard."]},
            }
        )
    )
    assert problems.keys_needing("password") == ["databases/analytics.yaml"]
    assert problems.others == [("metadata.yaml", "type: Must be equal to Dashboard.")]
    assert not problems.fixable_by_input


def test_it_reads_the_ssh_credentials_conflict_that_names_no_file() -> None:
    body = {
        "errors": [
            {
                "message": "Cannot have multiple credentials for the SSH Tunnel",
                "error_type": "GENERIC_COMMAND_ERROR",
                "level": "warning",
                "extra": {"issue_codes": ISSUE_1010},
            }
        ]
    }
    problems = parse_import_error(body)
    assert problems.needs == []
    assert problems.others == [(None, "Cannot have multiple credentials for the SSH Tunnel")]
    assert not problems.fixable_by_input
    assert problems.describe() == "Cannot have multiple credentials for the SSH Tunnel"


def test_it_reads_nested_and_string_problems_as_others() -> None:
    problems = parse_import_error(
        error_body(
            {
                "databases/x.yaml": {
                    "ssh_tunnel": {"password": "Either password or private_key is required"}
                },
                "dashboards/Sales_1.yaml": {"dashboards/Sales_1.yaml": "Not a valid YAML file"},
                "charts/a.yaml": "Something else went wrong",
            }
        )
    )
    assert problems.others == [
        ("databases/x.yaml", "ssh_tunnel.password: Either password or private_key is required"),
        ("dashboards/Sales_1.yaml", "dashboards/Sales_1.yaml: Not a valid YAML file"),
        ("charts/a.yaml", "Something else went wrong"),
    ]


def test_it_reads_the_legacy_message_envelope() -> None:
    problems = parse_import_error({"message": {"databases/a.yaml": PASSWORD_NEEDED}})
    assert problems.needs == [InputNeed("databases/a.yaml", "password")]
