from __future__ import annotations

from urllib.parse import urlsplit

from django.core.exceptions import ValidationError


def validate_superset_url(value: str) -> None:
    """http(s)://host[:port][/path], where host may be an intranet name like ``superset``.

    Django's URLValidator wants a dotted domain, which refuses the
    single-label host names intranets use.
    """
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        raise ValidationError("Enter a valid URL, e.g. https://superset.example.com.") from None
    if parts.scheme not in ("http", "https"):
        raise ValidationError("The URL must start with http:// or https://.")
    if not parts.hostname or any(c.isspace() for c in value.strip()):
        raise ValidationError("Enter a valid URL, e.g. https://superset.example.com.")
    if parts.username or parts.password:
        raise ValidationError(
            "Put the credentials in the username and password fields, not the URL."
        )
    if parts.query or parts.fragment:
        raise ValidationError("Give Superset's base URL, without ?query or #fragment.")
    if port == 0:
        raise ValidationError("The port must be between 1 and 65535.")
