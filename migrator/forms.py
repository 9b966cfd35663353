from __future__ import annotations

from typing import Any

from django import forms
from django.db.models import Q

from migrator.models import Environment


class EnvironmentForm(forms.ModelForm):
    """Adds or changes an environment; the page, the API, the admin and the CLI use it.

    The password is write-only. Left blank on a change it keeps the stored one,
    but only while the URL, username and provider stay as they were: a stored
    password is never sent to another address (``Environment.client``).
    """

    password = forms.CharField(
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        max_length=1024,
        required=False,
        strip=False,
        help_text="Stored encrypted and never shown again.",
    )

    class Meta:
        model = Environment
        # The password is set through Environment.set_password (save below).
        fields = ["name", "url", "username", "provider", "verify_tls"]
        widgets = {"url": forms.URLInput(attrs={"placeholder": "https://superset.example.com"})}

    field_order = ["name", "url", "username", "password", "provider", "verify_tls"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Too long a name is refused with a message, not silently cut by the browser.
        name = self.fields["name"]
        name.widget.attrs.pop("maxlength", None)
        name.help_text = f"At most {name.max_length} characters."
        if self.instance.pk:
            self.fields["password"].help_text = (
                "Stored encrypted and never shown again. Leave blank to keep the current one; "
                "changing the URL, username, provider or TLS setting needs it again."
            )

    @classmethod
    def changing(cls, instance: Environment, changes: dict[str, Any]) -> EnvironmentForm:
        """A form that changes only the fields in ``changes`` (``None``: keep it)."""
        data: dict[str, Any] = {name: getattr(instance, name) for name in cls._meta.fields}
        data["password"] = ""
        data.update({key: value for key, value in changes.items() if value is not None})
        return cls(data, instance=instance)

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("password"):
            return data
        if self.instance.pk is None:
            self.add_error("password", "Enter the Superset user's password.")
        elif all(key in data for key in ("url", "username", "provider")) and not (
            self.instance.password_applies_to(
                data["url"], data["username"], data["provider"], data.get("verify_tls", True)
            )
        ):
            self.add_error("password", PASSWORD_AGAIN)
        return data

    def save(self, commit: bool = True) -> Environment:
        if self.cleaned_data.get("password"):
            self.instance.set_password(self.cleaned_data["password"])
        return super().save(commit)


PASSWORD_AGAIN = (
    "Enter the password again: the stored one was saved for another URL, username, "
    "provider or TLS setting, and is never sent anywhere else."
)


def resolve_environment(value: Any) -> Environment | None:
    """An environment by id or by name (API callers use either)."""
    if value is None or value == "":
        return None
    text = str(value).strip()
    if "\x00" in text:
        return None  # PostgreSQL refuses NUL in a query: no name can hold one anyway
    query = Q(name=text)
    if text.isdigit():
        query |= Q(pk=int(text))
    return Environment.objects.filter(query).order_by("pk").first()


class EnvironmentChoiceField(forms.Field):
    default_error_messages = {"unknown": "No environment with this id or name."}

    def clean(self, value: Any) -> Environment:
        value = super().clean(value)
        env = resolve_environment(value)
        if env is None:
            raise forms.ValidationError(self.error_messages["unknown"], code="unknown")
        return env


class DashboardIdsField(forms.Field):
    # Reads every value of a form's repeated "dashboards" checkbox (a plain
    # dict from the API or the CLI gives the list as it is).
    widget = forms.MultipleHiddenInput
    default_error_messages = {
        "required": "Pick at least one dashboard.",
        "invalid": "Dashboard ids must be positive whole numbers.",
        "too_many": "At most %(max)s dashboards per migration.",
    }
    max_dashboards = 1000

    def to_python(self, value: Any) -> list[int]:
        if value in (None, "", []):
            return []
        values = value if isinstance(value, (list, tuple)) else [value]
        ids: list[int] = []
        for item in values:
            if isinstance(item, bool):
                raise forms.ValidationError(self.error_messages["invalid"], code="invalid")
            try:
                number = int(str(item).strip())
            except ValueError:
                raise forms.ValidationError(
                    self.error_messages["invalid"], code="invalid"
                ) from None
            if number <= 0:
                raise forms.ValidationError(self.error_messages["invalid"], code="invalid")
            if number not in ids:
                ids.append(number)
        if len(ids) > self.max_dashboards:
            raise forms.ValidationError(
                self.error_messages["too_many"],
                code="too_many",
                params={"max": self.max_dashboards},
            )
        return ids


class MigrationForm(forms.Form):
    """Validates a migration request from the page and from the API alike."""

    source = EnvironmentChoiceField()
    target = EnvironmentChoiceField()
    dashboards = DashboardIdsField()
    overwrite = forms.BooleanField(required=False)

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        source, target = data.get("source"), data.get("target")
        if source and target and source.pk == target.pk:
            self.add_error("target", "Pick a target different from the source.")
        return data

    def choices(self) -> dict[str, Any]:
        """The plan's choices from the preview's fields (``database__<source connection>``:
        ``map:<target id>``, ``create`` or ``replace`` with ``confirm__<name>`` typed;
        ``conflict__<dashboard uuid>``: rename, take_over or skip). Errors go on the form."""
        databases: dict[str, dict[str, Any]] = {}
        conflicts: dict[str, str] = {}
        for key, value in self.data.items():
            name = key.removeprefix("database__")
            if key.startswith("database__") and value:
                if value.startswith("map:"):
                    databases[name] = {"action": "map", "target": value.removeprefix("map:")}
                elif value == "replace":
                    if self.data.get(f"confirm__{name}", "").strip() != name:
                        self.add_error(
                            None,
                            f"To replace the target's connection {name!r}, type its name in "
                            "the box next to it.",
                        )
                    databases[name] = {"action": "replace"}
                elif value == "create":
                    databases[name] = {"action": "create"}
            elif key.startswith("conflict__") and value in ("rename", "take_over", "skip"):
                conflicts[key.removeprefix("conflict__")] = value
        return {"databases": databases, "conflicts": conflicts}

    def plan(self, choices: dict[str, Any]) -> dict[str, Any]:
        """What this migration would do on the target (``promote.preview``): the page's
        preview, ``POST /api/migrations/plan`` and ``migrate_dashboards --plan``."""
        from migrator import promote  # promote reads Superset; the form itself does not

        data = self.cleaned_data
        return promote.preview(
            data["source"],
            data["target"],
            data["dashboards"],
            {"overwrite": data["overwrite"], **choices},
        )

    def check(
        self,
        choices: dict[str, Any],
        *,
        require_answers: bool = False,
        rows: dict[int, dict[str, Any]] | None = None,
        seen: dict[str, Any] | None = None,
    ) -> dict[str, list[str]]:
        """Errors naming each choice that refers to nothing on the two Supersets (read-only
        calls, ``promote.check_choices``); ``conflicts`` ``{"*": answer}`` is the answer for
        every dashboard chosen. Raises SupersetError when a Superset cannot tell."""
        from migrator import promote

        data = self.cleaned_data
        return promote.check_choices(
            data["source"],
            data["target"],
            data["dashboards"],
            require_answers=require_answers,
            dashboard_rows=rows,
            seen=seen,
            **choices,
        )

    def start(
        self,
        owner: Any,
        choices: dict[str, Any],
        *,
        titles: dict[int, str] | None = None,
        rows: dict[int, dict[str, Any]] | None = None,
        seen: dict[str, Any] | None = None,
    ) -> Any:
        """Start the migration task: the page, the API and the CLI all start here."""
        from migrator.pipeline import start_migration

        data = self.cleaned_data
        return start_migration(
            owner=owner,
            source=data["source"],
            target=data["target"],
            dashboards=self.dashboard_refs(titles or {}, rows or {}),
            overwrite=data["overwrite"],
            seen=seen,
            **choices,
        )

    def dashboard_refs(
        self, titles: dict[int, str], rows: dict[int, dict[str, Any]] | None = None
    ) -> list[dict[str, Any]]:
        """The dashboards as the task keeps them: id and title, and the uuid and slug
        when the source was read already (the task then reads the target sooner)."""
        refs = []
        for i in self.cleaned_data["dashboards"]:
            row = (rows or {}).get(i) or {}
            ref = {"id": i, "title": row.get("title") or titles.get(i, "")}
            if row.get("uuid"):
                ref |= {"uuid": str(row["uuid"]), "slug": row.get("slug")}
            refs.append(ref)
        return refs
