"""Error parsing shared by the client: Superset's three error shapes, truncation, redaction."""

from __future__ import annotations

import json

import pytest

from migrator.superset.errors import (
    ConnectionTestFailed,
    ImportRejected,
    SupersetAPIError,
    SupersetError,
    html_title,
    parse_error_body,
    redact,
)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {
                "errors": [
                    {
                        "message": "The CSRF token is invalid.",
                        "error_type": "GENERIC_BACKEND_ERROR",
                        "level": "error",
                        "extra": {"issue_codes": []},
                    }
                ]
            },
            ("The CSRF token is invalid.", "GENERIC_BACKEND_ERROR", {"issue_codes": []}),
        ),
        ({"message": "Not found"}, ("Not found", None, {})),
        ({"msg": "Token has expired"}, ("Token has expired", None, {})),
        (
            {
                "message": {
                    "sqlalchemy_uri": [
                        "SQLiteDialect_pysqlite cannot be used as a data source for security reasons."
                    ]
                }
            },
            (
                "sqlalchemy_uri: SQLiteDialect_pysqlite cannot be used as a data source for "
                "security reasons.",
                None,
                {},
            ),
        ),
        ({"result": []}, (None, None, {})),
    ],
)
def test_it_reads_supersets_error_shapes(body: dict, expected: tuple) -> None:
    assert parse_error_body(json.dumps(body)) == expected


@pytest.mark.parametrize("text", [None, "", "<html>", "[1, 2]"])
def test_it_reads_nothing_from_bodies_that_are_not_error_objects(text: str | None) -> None:
    assert parse_error_body(text) == (None, None, {})


def test_it_keeps_at_most_2kb_of_the_body() -> None:
    error = SupersetError("boom", body="x" * 5000, status=500, url="http://s/api")
    assert len(error.body) == 2048
    assert str(error) == "boom"


def test_it_builds_the_subclasses_with_their_attributes() -> None:
    assert issubclass(ImportRejected, SupersetAPIError)
    assert issubclass(ConnectionTestFailed, SupersetAPIError)
    error = SupersetAPIError("m", error_type="T", extra={"a": 1})
    assert (error.error_type, error.extra) == ("T", {"a": 1})
    assert SupersetAPIError("m").extra == {}


def test_it_redacts_secrets_longest_first() -> None:
    text = "user pw=hunter2hunter2 and hunter2"
    assert redact(text, ["hunter2", "hunter2hunter2", "", "ab"]) == (
        "user pw=******** and ********"
    )


def test_it_reads_an_html_title() -> None:
    assert html_title("<html><TITLE>\n 500  Internal\nServer Error</TITLE>") == (
        "500 Internal Server Error"
    )
    assert html_title("<p>no title</p>") is None
