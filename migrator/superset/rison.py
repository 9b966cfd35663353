"""Just enough Rison (https://github.com/Nanonid/rison) to build Superset's ``q`` argument."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

RisonValue = None | bool | int | str | Sequence["RisonValue"] | Mapping[str, "RisonValue"]

# Stricter than Rison's own id rule on purpose: Superset parses ``q`` with ``prison``,
# whose id characters differ from the reference ones, and a bare value starting with a
# digit would become a number. Anything else is quoted, which both accept.
_BARE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def quote(text: str) -> str:
    if _BARE.match(text):
        return text
    return "'" + text.replace("!", "!!").replace("'", "!'") + "'"


def dumps(value: RisonValue) -> str:
    # bool before int: True is an int too.
    if value is None:
        return "!n"
    if value is True:
        return "!t"
    if value is False:
        return "!f"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return quote(value)
    if isinstance(value, Mapping):
        return "(" + ",".join(f"{quote(str(k))}:{dumps(v)}" for k, v in value.items()) + ")"
    if isinstance(value, Sequence):
        return "!(" + ",".join(dumps(item) for item in value) + ")"
    raise TypeError(f"Cannot encode {type(value).__name__} as Rison")
