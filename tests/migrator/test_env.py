from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from migrator.env import Env, database_from_url


@pytest.mark.parametrize(
    ("method", "value", "args"),
    [
        ("bool", "maybe", (False,)),
        ("int", "ten", (10,)),
        ("int", "0", (10,)),
        ("float", "fast", (1.0,)),
        ("float", "nan", (1.0,)),
        ("choice", "process", ("thread", ("thread", "external"))),
    ],
)
def test_a_bad_value_names_the_variable(method, value, args):
    env = Env({"SOME_SETTING": value})
    kwargs = {"minimum": 1} if method == "int" else {}
    with pytest.raises(ImproperlyConfigured, match="SOME_SETTING"):
        getattr(env, method)("SOME_SETTING", *args, **kwargs)


def test_values_and_defaults():
    env = Env({"A": "yes", "B": "42", "C": " x , y ,", "D": ""})
    assert env.bool("A", False) is True
    assert env.int("B", 1) == 42
    assert env.list("C", []) == ["x", "y"]
    assert env.str("D", "default") == "default"
    assert env.bool("MISSING", True) is True


def test_database_urls(tmp_path):
    sqlite = database_from_url("DATABASE_URL", "sqlite:///db.sqlite3", tmp_path)
    assert sqlite["NAME"] == str(tmp_path / "db.sqlite3")
    pg = database_from_url("DATABASE_URL", "postgres://u:p%40ss@db.example:5433/migrator", tmp_path)
    assert (pg["NAME"], pg["USER"], pg["PASSWORD"], pg["HOST"], pg["PORT"]) == (
        "migrator",
        "u",
        "p@ss",
        "db.example",
        "5433",
    )
    with pytest.raises(ImproperlyConfigured, match="DATABASE_URL"):
        database_from_url("DATABASE_URL", "mysql://x/y", tmp_path)
    with pytest.raises(ImproperlyConfigured, match="DATABASE_URL"):
        database_from_url("DATABASE_URL", "postgres://host/", tmp_path)
