from __future__ import annotations

from typing import Any

from django import forms
from django.db.models import Q

from migrator.models import Environment


class EnvironmentForm(forms.ModelForm):
    password = forms.CharField(
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        max_length=1024,
        required=False,
        strip=False,
        help_text="Stored encrypted and never shown again. Leave blank to keep the current one.",
    )

    class Meta:
        model = Environment
        fields = ["name", "url", "username", "password", "provider", "verify_tls"]
        widgets = {"url": forms.URLInput(attrs={"placeholder": "https://superset.example.com"})}

    def clean_password(self) -> str:
        password = self.cleaned_data.get("password", "")
        if not password:
            if self.instance.pk:
                return self.instance.password
            raise forms.ValidationError("Enter the Superset user's password.")
        return password


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

    def dashboard_refs(self, titles: dict[int, str]) -> list[dict[str, Any]]:
        return [{"id": i, "title": titles.get(i, "")} for i in self.cleaned_data["dashboards"]]
