"""The JSON API: session login, CSRF on writes, OpenAPI at /api/openapi.json."""

from __future__ import annotations

from typing import Any, Literal

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from ninja import NinjaAPI, Router, Schema
from ninja import Status as Reply
from ninja.errors import AuthenticationError, HttpError, ValidationError
from ninja.security import django_auth
from pydantic import Field, model_validator

from migrator import rollback
from migrator.forms import EnvironmentForm, MigrationForm, resolve_environment
from migrator.models import DatabaseMapping, Environment
from migrator.pipeline import drop_head_start, head_start_wanted
from migrator.plan import PlanError
from migrator.superset.errors import SupersetError
from tasks_app.access import task_for_change
from tasks_app.api import ErrorOut, TaskOut
from tasks_app.api import router as tasks_router
from tasks_app.presenter import task_json

# Answers every operation can give besides its own, declared once here so the
# document stays true for endpoints added later. (status, description, when)
COMMON_ERRORS: list[tuple[int, str, str]] = [
    (400, "Invalid input: `errors` maps each field to its messages", "has_input"),
    (401, "Not logged in (no valid session cookie)", "always"),
    (403, "CSRF check failed (send the csrftoken cookie's value as X-CSRFToken)", "unsafe"),
    (404, "No such object", "has_path_params"),
]


class MigratorAPI(NinjaAPI):
    def get_openapi_schema(self, **kwargs: Any) -> Any:
        schema = super().get_openapi_schema(**kwargs)
        for operations in schema["paths"].values():
            for method, operation in operations.items():
                _declare_common_errors(method, operation)
        return schema


def _declare_common_errors(method: str, operation: dict[str, Any]) -> None:
    parameters = operation.get("parameters", [])
    applies = {
        "always": True,
        "unsafe": method.lower() not in ("get", "head", "options"),
        "has_input": bool(parameters or operation.get("requestBody")),
        "has_path_params": any(p.get("in") == "path" for p in parameters),
    }
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}}
    responses = operation["responses"]
    for status, description, when in COMMON_ERRORS:
        if applies[when] and status not in responses and str(status) not in responses:
            responses[status] = {"description": description, "content": error}


api = MigratorAPI(
    title="Superset Migrator API",
    version="1",
    description="Move Superset dashboards between environments as background tasks. "
    "Log in through /accounts/login/ (session cookie); send the csrftoken cookie's value "
    "as X-CSRFToken on every POST.",
    auth=django_auth,
    urls_namespace="api",
    # The document and its browser view need a login like every other page.
    docs_decorator=login_required,
)


def _error(
    request: HttpRequest, status: int, detail: str, errors: dict | None = None
) -> HttpResponse:
    body: dict[str, Any] = {"detail": detail}
    if errors is not None:
        body["errors"] = errors
    return api.create_response(request, body, status=status)


@api.exception_handler(ValidationError)
def _validation(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    errors: dict[str, list[str]] = {}
    for err in exc.errors:
        loc = [
            str(p)
            for p in err.get("loc", ())
            if p not in ("body", "query", "path", "payload", "filters")
        ]
        errors.setdefault(".".join(loc) or "__all__", []).append(err.get("msg", "invalid"))
    return _error(request, 400, "Invalid input.", errors)


@api.exception_handler(AuthenticationError)
def _unauthenticated(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    return _error(request, 401, "Log in first (session cookie), and send X-CSRFToken on writes.")


@api.exception_handler(Http404)
def _not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
    return _error(request, 404, "Not found.")


@api.exception_handler(PermissionDenied)
def _forbidden(request: HttpRequest, exc: PermissionDenied) -> HttpResponse:
    return _error(request, 403, str(exc) or "Not allowed.")


@api.exception_handler(HttpError)
def _http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    return _error(request, exc.status_code, str(exc))


def _form_errors(form) -> dict[str, list[str]]:
    return {field: [str(e) for e in errs] for field, errs in form.errors.items()}


# --- environments --------------------------------------------------------

envs = Router(tags=["environments"])


class EnvironmentOut(Schema):
    id: int
    name: str
    url: str
    username: str
    provider: str
    superset_version: str = Field(
        description="The Superset release the server said it runs when last tested or "
        "migrated with (e.g. 6.1.0); empty when not known yet."
    )


class EnvironmentIn(Schema):
    name: str = Field(max_length=100)
    url: str = Field(max_length=500)
    username: str = Field(max_length=150)
    password: str = Field(max_length=1024, description="Write-only; stored encrypted.")
    provider: str = Field("db", description="db or ldap")
    verify_tls: bool = True


class EnvironmentChangeIn(Schema):
    """Only the fields given change. Changing url, username or provider needs the password."""

    name: str | None = Field(None, max_length=100)
    url: str | None = Field(None, max_length=500)
    username: str | None = Field(None, max_length=150)
    password: str | None = Field(
        None, max_length=1024, description="Write-only; omit to keep the stored one."
    )
    provider: str | None = Field(None, description="db or ldap")
    verify_tls: bool | None = None


class DashboardOut(Schema):
    id: int
    uuid: str | None
    title: str
    slug: str | None


class ConnectionTestOut(Schema):
    ok: bool
    reason: str
    message: str
    version: str = Field("", description="The Superset release, when the server says it.")


@envs.get("/environments", response=list[EnvironmentOut], summary="List environments")
def list_environments(request: HttpRequest) -> Any:
    return list(Environment.objects.all())


MANAGERS_ONLY = "Needs the permission to manage environments (staff have it)."


@envs.post(
    "/environments",
    response={201: EnvironmentOut, 400: ErrorOut, 403: ErrorOut},
    summary="Register an environment",
    description=MANAGERS_ONLY,
)
def create_environment(request: HttpRequest, payload: EnvironmentIn) -> Any:
    Environment.check_manager(request.user)
    form = EnvironmentForm(payload.dict())
    if not form.is_valid():
        return Reply(400, {"detail": "Invalid environment.", "errors": _form_errors(form)})
    return Reply(201, form.save())


@envs.patch(
    "/environments/{env_id}",
    response={200: EnvironmentOut, 400: ErrorOut, 403: ErrorOut, 404: ErrorOut},
    summary="Change an environment",
    description=f"{MANAGERS_ONLY} Fields left out keep their value; changing `url`, "
    "`username` or `provider` needs `password` again.",
)
def change_environment(request: HttpRequest, env_id: int, payload: EnvironmentChangeIn) -> Any:
    Environment.check_manager(request.user)
    env = get_object_or_404(Environment, pk=env_id)
    form = EnvironmentForm.changing(env, payload.dict())
    if not form.is_valid():
        return Reply(400, {"detail": "Invalid environment.", "errors": _form_errors(form)})
    return form.save()


@envs.delete(
    "/environments/{env_id}",
    response={204: None, 403: ErrorOut, 404: ErrorOut},
    summary="Delete an environment (its tasks stay in the history)",
    description=MANAGERS_ONLY,
)
def delete_environment(request: HttpRequest, env_id: int) -> Any:
    Environment.check_manager(request.user)
    get_object_or_404(Environment, pk=env_id).delete()
    return Reply(204, None)


@envs.post(
    "/environments/{env_id}/test",
    response={200: ConnectionTestOut, 404: ErrorOut},
    summary="Log in to the environment and report what is wrong, if anything",
)
def test_environment(request: HttpRequest, env_id: int) -> Any:
    from migrator.dashboards import check_connection

    return check_connection(get_object_or_404(Environment, pk=env_id))


@envs.get(
    "/environments/{env_id}/dashboards",
    response={200: list[DashboardOut], 404: ErrorOut, 502: ErrorOut},
    summary="The environment's dashboards (search by title or slug)",
)
def list_dashboards(request: HttpRequest, env_id: int, search: str = "") -> Any:
    env = get_object_or_404(Environment, pk=env_id)
    from migrator import sessions

    try:
        with sessions.borrow(env) as client:
            return client.list_dashboards(search.strip()[:200] or None, limit=None)
    except SupersetError as exc:
        return Reply(502, {"detail": f"{env.name}: {exc.message}"})


# --- migrations ----------------------------------------------------------

migrations = Router(tags=["migrations"])


class DatabaseChoiceIn(Schema):
    action: Literal["map", "create", "replace"] = Field(
        description="map: use a target connection (no password, it is not changed); create "
        "it on the target; replace the target's connection of the same name with the source's"
    )
    target: int | str | None = Field(
        None, description="For map: the target connection's id, name or uuid"
    )

    @model_validator(mode="after")
    def _map_names_a_target(self) -> DatabaseChoiceIn:
        if self.action == "map" and self.target in (None, ""):
            raise ValueError("map needs the target connection: give `target`.")
        return self


class MigrationIn(Schema):
    source: int | str = Field(description="Environment id or name")
    target: int | str = Field(description="Environment id or name")
    dashboards: list[int] = Field(min_length=1, max_length=1000)
    overwrite: bool = False
    databases: dict[str, DatabaseChoiceIn] = Field(
        default_factory=dict,
        description="Per source connection (name or uuid), what it becomes on the target. "
        "Left out: the saved mapping of this source → target pair, else the target's "
        "connection of the same name (map), else create.",
    )
    conflicts: dict[str, Literal["rename", "take_over", "skip"]] = Field(
        default_factory=dict,
        description="Per dashboard (uuid or slug) whose slug the target already uses for "
        "another dashboard. Left out: the task asks.",
    )

    def choices(self) -> dict[str, Any]:
        return {
            "databases": {
                k: {key: v for key, v in c.dict().items() if v is not None}
                for k, c in self.databases.items()
            },
            "conflicts": dict(self.conflicts),
        }


class MigrationOut(TaskOut):
    """A migration task: the engine's keys and the migration's own."""

    source: dict[str, Any] | None = Field(None, description="The source environment {id, name}")
    target: dict[str, Any] | None = Field(None, description="The target environment {id, name}")
    dashboards: list[dict[str, Any]] = Field(default_factory=list, description="{id, title}")
    overwrite: bool | None = None
    plan: dict[str, Any] | None = Field(
        None, description="What the task will do, asset by asset (one task's answer only)."
    )
    report: dict[str, Any] | None = Field(
        None, description="What the task did, checked afterwards (one task's answer only)."
    )


class PlanOut(Schema):
    plan: dict[str, Any]


class MappingsIO(Schema):
    mappings: dict[str, DatabaseChoiceIn] = Field(
        description="Source connection name -> what it becomes on the target (map or create)"
    )


def _validated_migration(
    request: HttpRequest, payload: MigrationIn, *, starting: bool, seen: dict | None = None
) -> tuple[Any, dict, dict[int, str]]:
    form = MigrationForm(payload.dict(include={"source", "target", "dashboards", "overwrite"}))
    if not form.is_valid():
        raise _Invalid("Invalid migration.", _form_errors(form))
    choices = payload.choices()
    rows: dict[int, dict[str, Any]] = {}
    try:
        # A script gets a 400 for a slug conflict it did not answer (a person is asked).
        errors = form.check(choices, require_answers=starting, rows=rows, seen=seen)
    except SupersetError as exc:
        if not starting:
            raise HttpError(502, exc.message) from exc
        # Started anyway: the task reports what is wrong with the Superset it cannot reach.
        errors = {}
    if errors:
        raise _Invalid("Invalid choices.", errors)
    return form, choices, rows


class _Invalid(Exception):
    def __init__(self, detail: str, errors: dict[str, list[str]]) -> None:
        super().__init__(detail)
        self.detail, self.errors = detail, errors


@api.exception_handler(_Invalid)
def _invalid(request: HttpRequest, exc: _Invalid) -> HttpResponse:
    return _error(request, 400, exc.detail, exc.errors)


@migrations.post(
    "/migrations",
    response={201: MigrationOut, 400: ErrorOut, 502: ErrorOut},
    summary="Start a migration task (returns at once)",
)
def create_migration(request: HttpRequest, payload: MigrationIn) -> Any:
    # What the check reads, the task need not read again: the dashboards' titles (kept
    # with it), and the target's reads when a worker of this process takes it at once.
    seen = {} if head_start_wanted() else None
    try:
        form, choices, rows = _validated_migration(request, payload, starting=True, seen=seen)
        task = form.start(request.user, choices, rows=rows, seen=seen)
    except BaseException:
        drop_head_start(seen)  # refused: what it began is for no task
        raise
    return Reply(201, task_json(task))


@migrations.post(
    "/migrations/plan",
    response={200: PlanOut, 400: ErrorOut, 502: ErrorOut},
    summary="What a migration would do on the target, asset by asset; changes nothing",
    description="The body of `POST /api/migrations`. The source's dashboards are exported "
    "and the target is only read.",
)
def plan_migration(request: HttpRequest, payload: MigrationIn) -> Any:
    form, choices, _ = _validated_migration(request, payload, starting=False)
    try:
        plan = form.plan(choices)
    except PlanError as exc:
        return Reply(400, {"detail": "The migration cannot be planned.", "errors": exc.errors})
    except SupersetError as exc:
        return Reply(502, {"detail": exc.message})
    return {"plan": plan}


@envs.get(
    "/environments/{source}/mappings/{target}",
    response={200: MappingsIO, 404: ErrorOut},
    summary="The connection mappings saved for migrations from source to target",
)
def get_mappings(request: HttpRequest, source: str, target: str) -> Any:
    src, tgt = _environment_pair(source, target)
    return {"mappings": DatabaseMapping.choices_for(src, tgt)}


@envs.put(
    "/environments/{source}/mappings/{target}",
    response={200: MappingsIO, 400: ErrorOut, 404: ErrorOut},
    summary="Replace the connection mappings saved for migrations from source to target",
    description="`replace` is never saved: it is chosen for each migration.",
)
def put_mappings(request: HttpRequest, source: str, target: str, payload: MappingsIO) -> Any:
    src, tgt = _environment_pair(source, target)
    choices = {
        k: {key: v for key, v in c.dict().items() if v is not None}
        for k, c in payload.mappings.items()
    }
    if any(c["action"] == "replace" for c in choices.values()):
        raise _Invalid(
            "Invalid mappings.", {"mappings": ["replace is chosen per migration, never saved."]}
        )
    DatabaseMapping.replace_all(src, tgt, choices)
    return {"mappings": DatabaseMapping.choices_for(src, tgt)}


def _environment_pair(source: str, target: str) -> tuple[Environment, Environment]:
    src, tgt = resolve_environment(source), resolve_environment(target)
    if src is None or tgt is None:
        raise Http404
    return src, tgt


class RollbackPlanOut(Schema):
    plan: dict[str, Any]


def _rollback_of(request: HttpRequest, task_id: int) -> Any:
    migration = task_for_change(request.user, task_id)
    try:
        rollback.check_can_roll_back(migration)
    except rollback.CannotRollBack as exc:
        raise HttpError(409, str(exc)) from None
    return migration


@migrations.post(
    "/tasks/{task_id}/rollback",
    response={201: TaskOut, 403: ErrorOut, 404: ErrorOut, 409: ErrorOut},
    summary="Roll a finished migration back (starts a rollback task)",
    description="Puts back what the migration replaced (from its backup) and deletes what it "
    "created; what changed on the target since is kept and named in the report. 409 when the "
    "task is not a finished migration, or is already rolled back (the detail names the "
    "rollback).",
)
def rollback_migration(request: HttpRequest, task_id: int) -> Any:
    migration = _rollback_of(request, task_id)
    try:
        task = rollback.start_rollback(migration, owner=request.user)
    except rollback.CannotRollBack as exc:
        raise HttpError(409, str(exc)) from None
    return Reply(201, task_json(task))


@migrations.post(
    "/tasks/{task_id}/rollback/plan",
    response={200: RollbackPlanOut, 403: ErrorOut, 404: ErrorOut, 409: ErrorOut, 502: ErrorOut},
    summary="What a rollback of this migration would do, asset by asset; changes nothing",
)
def rollback_plan(request: HttpRequest, task_id: int) -> Any:
    migration = _rollback_of(request, task_id)
    try:
        return {"plan": rollback.plan_rollback(migration)}
    except rollback.CannotRollBack as exc:
        raise HttpError(409, str(exc)) from None
    except SupersetError as exc:
        return Reply(502, {"detail": exc.message})


api.add_router("", envs)
api.add_router("", migrations)
api.add_router("", tasks_router)
