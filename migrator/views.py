"""Pages: the migration page, the dashboard picker, environments."""

from __future__ import annotations

import json

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect

from migrator import dashboards as dashboard_lookup
from migrator import rollback
from migrator.forms import EnvironmentForm, MigrationForm, resolve_environment
from migrator.models import DatabaseMapping, Environment
from migrator.plan import PlanError, display_rows
from migrator.superset.errors import SupersetError
from tasks_app.access import task_for_change
from tasks_app.htmx import Rendered, for_htmx
from tasks_app.kinds import summary
from tasks_app.views import history_context


def _kept_input(form: MigrationForm | None) -> dict:
    """What a person typed and ticked, to show again when the form comes back with an
    error: the search and the ticked dashboards (with the titles the picker sent)."""
    if form is None or not form.is_bound:
        return {"search": "", "kept_dashboards": []}
    data = form.data
    ids = [v for v in (data.getlist("dashboards") if hasattr(data, "getlist") else []) if v]
    kept = [
        {"id": v, "title": str(data.get(f"title_{v}", ""))[:300] or f"Dashboard {v}"}
        for v in dict.fromkeys(ids)
        if str(v).isdigit()
    ]
    return {"search": str(data.get("search", ""))[:200], "kept_dashboards": kept}


def _start_form_context(form: MigrationForm | None = None, **extra) -> dict:
    return {
        "form": form or MigrationForm(initial={"overwrite": False}),
        "environments": list(Environment.objects.all()),
        **_kept_input(form if not extra.get("started") else None),
        **extra,
    }


def _migration_context(request: HttpRequest, form: MigrationForm | None = None) -> dict:
    return _start_form_context(form, **history_context(request))


@require_GET
def migration_page(request: HttpRequest) -> HttpResponse:
    return render(request, "migrator/migration.html", _migration_context(request))


@require_POST
@for_htmx(page="migrator/migration.html", fragment="migrator/_plan.html")
def preview(request: HttpRequest) -> Rendered:
    """What the migration would do on the target (nothing is written), with its choices."""
    form = MigrationForm(request.POST)
    context: dict = {"form": form}
    if form.is_valid():
        try:
            context["plan"] = form.plan(form.choices())
        except PlanError as exc:
            context["error"] = str(exc)
        except SupersetError as exc:
            context["error"] = exc.message
        if "plan" in context:
            context["plan_rows"] = display_rows(context["plan"])
    # Without JavaScript: the whole page, the plan inside the form.
    return Rendered(
        context,
        otherwise=lambda: render(
            request, "migrator/migration.html", {**_migration_context(request, form), **context}
        ),
    )


@require_POST
@for_htmx(page="migrator/migration.html", fragment="migrator/_start_form.html")
def start(request: HttpRequest) -> Rendered:
    form = MigrationForm(request.POST)
    choices = form.choices() if form.is_valid() else {}
    if form.is_valid():
        try:
            for messages_ in form.check(choices).values():
                for message in messages_:
                    form.add_error(None, message)
        except SupersetError:
            pass  # started anyway: the task reports what is wrong with that Superset
    if not form.is_valid():
        return Rendered(
            _start_form_context(form),
            status=400,
            otherwise=lambda: render(
                request, "migrator/migration.html", _migration_context(request, form), status=400
            ),
        )
    titles = {
        int(key.removeprefix("title_")): value[:300]
        for key, value in request.POST.items()
        if key.startswith("title_") and key.removeprefix("title_").isdigit()
    }
    task = form.start(request.user, choices, titles=titles)

    def to_the_history() -> HttpResponse:
        messages.success(request, f"Migration task #{task.pk} started.")
        return redirect("home")

    return Rendered(
        _start_form_context(form, started=task),
        headers={"HX-Trigger": json.dumps({"task-started": {"id": task.pk}})},
        otherwise=to_the_history,
    )


@require_GET
def dashboard_picker(request: HttpRequest) -> HttpResponse:
    """The source's dashboards matching ``search``, keeping those already ticked."""
    source = resolve_environment(request.GET.get("source"))
    search = request.GET.get("search", "").strip()[:200]
    selected = [int(v) for v in request.GET.getlist("dashboards") if v.isdigit()]
    context = {"source": source, "search": search, "selected": selected}
    if source is not None:
        try:
            context.update(dashboard_lookup.pick(source, search, selected))
        except SupersetError as exc:
            context["error"] = f"{source.name}: {exc.message}"
    return render(request, "migrator/_dashboard_picker.html", context)


LAST_TESTS = "environment_tests"


def _remember_test(request: HttpRequest, env: Environment, result: dict) -> None:
    """The last "Test connection" result of each environment, for this session: it
    stays on the page after a reload."""
    tests = dict(request.session.get(LAST_TESTS, {}))
    tests[str(env.pk)] = {
        "ok": bool(result["ok"]),
        "reason": result["reason"],
        "message": str(result["message"])[:500],
        "at": timezone.now().isoformat(),
    }
    request.session[LAST_TESTS] = tests


def _last_test(request: HttpRequest, env: Environment) -> dict | None:
    found = request.session.get(LAST_TESTS, {}).get(str(env.pk))
    if not found:
        return None
    at = parse_datetime(found.get("at", ""))
    return {**found, "at": at}


@require_GET
def environment_list(request: HttpRequest) -> HttpResponse:
    environments = list(Environment.objects.all())
    return render(
        request,
        "migrator/environments.html",
        {
            "environments": environments,
            "rows": [{"env": env, "result": _last_test(request, env)} for env in environments],
            "mappings": DatabaseMapping.objects.select_related("source", "target"),
        },
    )


@require_POST
def mapping_delete(request: HttpRequest, mapping_id: int) -> HttpResponse:
    """Forget a saved connection mapping: the next migration plans its default again."""
    mapping = get_object_or_404(DatabaseMapping, pk=mapping_id)
    mapping.delete()
    messages.success(
        request,
        f"Forgot what {mapping.source_database} becomes on {mapping.target.name} "
        f"(from {mapping.source.name}).",
    )
    return redirect("environment-list")


@require_http_methods(["GET", "POST"])
def environment_edit(request: HttpRequest, env_id: int | None = None) -> HttpResponse:
    Environment.check_manager(request.user)
    env = get_object_or_404(Environment, pk=env_id) if env_id else None
    form = EnvironmentForm(request.POST or None, instance=env)
    if request.method == "POST" and form.is_valid():
        env = form.save()
        messages.success(
            request, f"Environment {env.name} saved. Use “Test connection” to check it."
        )
        return redirect("environment-list")
    return render(request, "migrator/environment_form.html", {"form": form, "env": env})


@require_POST
@for_htmx(page="migrator/environment_form.html", fragment="migrator/_try_result.html")
def environment_try(request: HttpRequest, env_id: int | None = None) -> dict:
    """ "Test connection" on the add or edit form, before saving: the values typed,
    nothing stored (without JavaScript: the form again, with the result)."""
    Environment.check_manager(request.user)
    env = get_object_or_404(Environment, pk=env_id) if env_id else None
    form = EnvironmentForm(request.POST, instance=env)
    if form.is_valid():
        result = dashboard_lookup.check_connection(form.save(commit=False))
    else:
        labels = [str(form.fields[n].label or n).lower() for n in form.errors if n in form.fields]
        message = f"Fix {', '.join(labels)} first." if labels else " ".join(form.non_field_errors())
        result = {"ok": False, "reason": "invalid", "message": message}
    return {"form": form, "env": env, "result": result}


@require_POST
def environment_delete(request: HttpRequest, env_id: int) -> HttpResponse:
    Environment.check_manager(request.user)
    env = get_object_or_404(Environment, pk=env_id)
    env.delete()
    messages.success(request, f"Environment {env.name} deleted.")
    # htmx follows a redirect inside the swap: ask it for a whole page instead.
    return (
        HttpResponseClientRedirect("/environments/")
        if request.htmx
        else redirect("environment-list")
    )


@require_POST
@for_htmx(page="migrator/environments.html", fragment="migrator/_test_result.html")
def environment_test(request: HttpRequest, env_id: int) -> Rendered:
    env = get_object_or_404(Environment, pk=env_id)
    result = dashboard_lookup.check_connection(env)
    _remember_test(request, env, result)
    result = {**result, "at": timezone.now()}

    def with_a_message() -> HttpResponse:
        (messages.success if result["ok"] else messages.error)(
            request, f"{env.name}: {result['message']}"
        )
        return redirect("environment-list")

    return Rendered({"env": env, "result": result}, otherwise=with_a_message)


@require_http_methods(["GET", "POST"])
def task_rollback(request: HttpRequest, task_id: int) -> HttpResponse:
    """A migration's rollback: what it will do, to confirm (GET); started (POST)."""
    migration = task_for_change(request.user, task_id)
    context = {"migration": migration, "summary": summary(migration)}
    try:
        rollback.check_can_roll_back(migration)
        if request.method == "POST":
            task = rollback.start_rollback(migration, owner=request.user)
            messages.success(request, f"Rollback task #{task.pk} started.")
            return redirect("task-detail", task_id=task.pk)
        context["plan"] = rollback.plan_rollback(migration)
    except rollback.CannotRollBack as exc:
        context["refused"] = str(exc)
    except SupersetError as exc:
        context["refused"] = f"Could not read the target: {exc.message}"
    return render(
        request, "migrator/rollback.html", context, status=409 if "refused" in context else 200
    )
