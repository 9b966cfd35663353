from __future__ import annotations

import pytest

from migrator.superset import rison


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        ({"page": 0, "page_size": 100}, "(page:0,page_size:100)"),
        ([1, 2], "!(1,2)"),
        ([], "!()"),
        ({}, "()"),
        (True, "!t"),
        (False, "!f"),
        (None, "!n"),
        (-3, "-3"),
        ("Sales", "Sales"),
        ("", "''"),
        ("2024", "'2024'"),
        ("-x", "'-x'"),
        ("it's", "'it!'s'"),
        ("wow!", "'wow!!'"),
        ("a b", "'a b'"),
        ("b0c8cc23-6c8b", "'b0c8cc23-6c8b'"),
        (
            {"filters": [{"col": "id", "opr": "in", "value": [1, 2]}]},
            "(filters:!((col:id,opr:in,value:!(1,2))))",
        ),
    ],
)
def test_it_encodes(value: rison.RisonValue, encoded: str) -> None:
    assert rison.dumps(value) == encoded


def test_it_refuses_what_it_cannot_encode() -> None:
    with pytest.raises(TypeError):
        rison.dumps(1.5)  # type: ignore[arg-type]
