#!/usr/bin/env python
import os
import sys

if sys.version_info < (3, 12):  # noqa: UP036 - a clear message instead of a syntax error later
    sys.exit(
        f"Superset Migrator needs Python 3.12 or newer (this is {sys.version.split()[0]}). "
        "Install python3.12 (e.g. `apt install python3.12`, `brew install python@3.12` or pyenv) "
        "and run `make run` again."
    )


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "migrator.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
