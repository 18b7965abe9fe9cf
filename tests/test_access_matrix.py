"""Every URL of the project against every role: who reaches it, and that everyone else gets
404 (pages and API alike; anonymous: the login redirect, or 401/403 from the API).

The table below must name every route the URL conf has (the Django admin, which checks its own
model permissions, and the login pages aside): a new URL without a row fails the first test, so
nobody adds a page without saying who may open it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from annotation.models import (
    Adjudication,
    ExportDefinition,
    ExportJob,
    ExportStatus,
    ImportBatch,
)
from annotation.services.assignment import claim_next_pair
from judging.models import GenerationRun, JudgeBackend, JudgeRun
from spavl_web.tokens import create_token
from tests.factories import make_campaign

pytestmark = pytest.mark.django_db

PERSONAS = [
    "anonymous",
    "reviewer",
    "other reviewer",
    "staff only",
    "adjudicator",
    "analyst",
    "exporter",
    "judge watcher",
    "judge operator",
    "admin",
    "group admin",
]
SIGNED_IN = frozenset(PERSONAS) - {"anonymous"}
ADMINS = frozenset({"admin", "group admin"})
ADJUDICATORS = ADMINS | {"adjudicator"}
ANALYSTS = ADJUDICATORS | {"analyst"}
EXPORTERS = ADMINS | {"exporter"}
JUDGE_OPERATORS = ADMINS | {"judge operator"}
JUDGE_WATCHERS = JUDGE_OPERATORS | {"judge watcher"}
DATA_READERS = ANALYSTS | EXPORTERS | JUDGE_WATCHERS


@dataclass(frozen=True)
class Route:
    method: str
    allowed: frozenset[str]
    args: Callable[[dict[str, Any]], list[object]] = lambda world: []


def _lease(world: dict[str, Any]) -> list[object]:
    return [world["lease"].pk]


def _image(world: dict[str, Any]) -> list[object]:
    return [world["lease"].campaign_pair.pair.question.image_id]


def _adjudication(world: dict[str, Any]) -> list[object]:
    return [world["adjudication"].pk]


def _pair(world: dict[str, Any]) -> list[object]:
    return [world["lease"].campaign_pair.pair_id]


def _question(world: dict[str, Any]) -> list[object]:
    return [world["lease"].campaign_pair.pair.question_id]


def _response(world: dict[str, Any]) -> list[object]:
    return [world["lease"].campaign_pair.pair.response_a_id]


def _import(world: dict[str, Any]) -> list[object]:
    return [world["import"].pk]


def _node(world: dict[str, Any]) -> list[object]:
    return [world["lease"].campaign_pair.pair.question.subcategory_id]


def _run(world: dict[str, Any]) -> list[object]:
    return [world["run"].pk]


def _generation(world: dict[str, Any]) -> list[object]:
    return [world["generation"].pk]


def _job(world: dict[str, Any]) -> list[object]:
    return [world["job"].pk]


def _campaign(world: dict[str, Any]) -> list[object]:
    return [world["campaign"].pk]


REVIEWER = frozenset({"reviewer"})
CLAIMERS = REVIEWER | ADMINS  # an active campaign's reviewer; admins claim in any active one

ROUTES: dict[str, Route] = {
    "review:home": Route("get", SIGNED_IN),
    "review:image": Route("get", SIGNED_IN, _image),
    "review:campaign_next": Route("post", CLAIMERS, lambda w: [w["campaign"].pk]),
    "review:assignment": Route("get", REVIEWER, _lease),
    "review:blind_verdict": Route("post", REVIEWER, _lease),
    "review:submit": Route("post", REVIEWER, _lease),
    "review:skip": Route("post", REVIEWER, _lease),
    "review:undo": Route("post", REVIEWER, _lease),
    "review:rewrite": Route("post", REVIEWER, _lease),
    "review:heartbeat": Route("post", REVIEWER, _lease),
    "review:prefetch": Route("post", REVIEWER, _lease),
    "review:settings": Route("post", SIGNED_IN),
    "review:tokens": Route("get", SIGNED_IN),
    "review:make_token": Route("post", SIGNED_IN),
    # A token is its owner's: revoking anyone else's answers 404.
    "review:token_revoke": Route("post", REVIEWER, lambda w: [w["token"].token_key]),
    "adjudication:queue": Route("get", ADJUDICATORS),
    "adjudication:rewrites": Route("get", ADJUDICATORS),
    "adjudication:page": Route("get", ADJUDICATORS, _adjudication),
    "adjudication:reopen": Route("post", ADJUDICATORS, _adjudication),
    "adjudication:gold": Route("post", ADJUDICATORS, _adjudication),
    "agreement:page": Route("get", ANALYSTS),
    "agreement:csv": Route("get", ANALYSTS),
    "exports:list": Route("get", EXPORTERS),
    "exports:start": Route("post", EXPORTERS),
    "judging:runs": Route("get", JUDGE_WATCHERS),
    "judging:run": Route("get", JUDGE_WATCHERS, _run),
    "judging:start": Route("post", JUDGE_OPERATORS),
    "judging:cancel": Route("post", JUDGE_OPERATORS, _run),
    "judging:generation": Route("get", JUDGE_WATCHERS),
    "judging:generation_start": Route("post", JUDGE_OPERATORS),
    "judging:generation_run": Route("get", JUDGE_WATCHERS, _generation),
    "judging:generation_cancel": Route("post", JUDGE_OPERATORS, _generation),
    "api:schema": Route("get", SIGNED_IN),
    "api:docs": Route("get", SIGNED_IN),
    "api:redoc": Route("get", SIGNED_IN),
    "api:agreement": Route("get", ANALYSTS),
    "api:exports": Route("post", EXPORTERS),
    # A job is its creator's (the exporter's); admins see every job.
    "api:export": Route("get", EXPORTERS, _job),
    "api:export_file": Route("get", EXPORTERS, lambda w: [w["job"].pk, "train.parquet"]),
    "api:judge_runs": Route("get", JUDGE_WATCHERS),
    "api:judge_run": Route("get", JUDGE_WATCHERS, _run),
    # Cancelling the run answers 200, then 409 for every later try: both reach the run.
    "api:judge_run_cancel": Route("post", JUDGE_OPERATORS, _run),
    "api:taxonomy": Route("get", SIGNED_IN),
    "api:taxonomy_nodes": Route("post", ADMINS),
    "api:taxonomy_node": Route("patch", ADMINS, _node),
    "api:taxonomy_node_merge": Route("post", ADMINS, _node),
    "api:taxonomy_node_retire": Route("post", ADMINS, _node),
    "api:taxonomy_node_restore": Route("post", ADMINS, _node),
    # An import is its starter's; admins see every import.
    "api:imports": Route("get", ADMINS),
    "api:import": Route("get", ADMINS, _import),
    "api:import_rejections": Route("get", ADMINS, _import),
    "api:pairs": Route("get", DATA_READERS),
    "api:pair": Route("get", DATA_READERS, _pair),
    "api:questions": Route("get", DATA_READERS),
    "api:question": Route("get", DATA_READERS, _question),
    "api:responses": Route("get", DATA_READERS),
    "api:response": Route("get", DATA_READERS, _response),
    "api:tokens": Route("get", SIGNED_IN),
    # Revoking answers 404 for a key the user does not hold: reached by nobody but its owner.
    "api:token": Route("delete", REVIEWER, lambda w: [w["api_token"].token_key]),
    "api:campaigns": Route("get", ANALYSTS),
    "api:campaign": Route("get", ANALYSTS, _campaign),
    "api:campaign_reviewers": Route("post", ADMINS, _campaign),
    # Taking rita off the campaign reaches it; anyone not on it answers 404.
    "api:campaign_reviewer": Route(
        "delete", ADMINS, lambda w: [w["campaign"].pk, w["personas"]["reviewer"].username]
    ),
    "api:reviews": Route("get", ANALYSTS),
    "api:adjudications": Route("get", ANALYSTS),
}
NOT_IN_THE_MATRIX = {"login", "logout"}  # public by design; the admin is checked by Django
API_PAGES = {"api:docs", "api:redoc"}  # HTML pages: anonymous users are sent to log in


def _route_names(patterns: list[Any], namespace: str = "") -> set[str]:
    names: set[str] = set()
    for entry in patterns:
        if isinstance(entry, URLResolver):
            if entry.app_name == "admin":
                continue
            inner = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
            names |= _route_names(entry.url_patterns, inner)
        elif isinstance(entry, URLPattern):
            assert entry.name, f"unnamed route {entry.pattern}"
            names.add(f"{namespace}{entry.name}")
    return names


def test_the_matrix_names_every_route():
    routes = _route_names(get_resolver().url_patterns) - NOT_IN_THE_MATRIX
    assert routes == set(ROUTES)


def _user(name: str, *, group: str | None = None, perms: tuple[str, ...] = ()) -> User:
    user = User.objects.create_user(name.replace(" ", "-"))
    if group:
        user.groups.add(Group.objects.get_or_create(name=group)[0])
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    return user


@pytest.fixture
def world(spavl_taxonomy, reviewer, other_reviewer, adjudicator, staff_admin, tmp_path: Path):
    campaign = make_campaign(pairs=3, reviewers=[reviewer])
    lease = claim_next_pair(campaign=campaign, reviewer=reviewer)
    assert lease is not None
    adjudication = Adjudication.objects.create(
        campaign_pair=lease.campaign_pair, pair=lease.campaign_pair.pair, reason="test"
    )
    exporter = _user("exporter", perms=("annotation.run_export",))
    staff_only = _user("staff only")
    staff_only.is_staff = True
    staff_only.save(update_fields=["is_staff"])
    definition = ExportDefinition.objects.create(name="everything", formats=["hf-parquet"])
    (tmp_path / "train.parquet").write_bytes(b"PAR1")
    job = ExportJob.objects.create(
        definition=definition,
        definition_snapshot={},
        format="hf-parquet",
        status=ExportStatus.FINISHED,
        output_dir=str(tmp_path),
        files=[{"name": "train.parquet", "size": 4, "sha256": "0" * 64}],
        created_by=exporter,
    )
    run = JudgeRun.objects.create(backend=JudgeBackend.BASELINE)
    token, _ = create_token(user=reviewer, name="rita's", scopes=["read"])
    api_token, _ = create_token(user=reviewer, name="rita's script", scopes=["read"])
    return {
        "campaign": campaign,
        "lease": lease,
        "adjudication": adjudication,
        "job": job,
        "run": run,
        "generation": GenerationRun.objects.create(
            requested_models=[{"model": "baseline:cautious", "revision": ""}], sampling={}
        ),
        "import": ImportBatch.objects.create(
            file_name="x.parquet", sha256="", format="spavl-parquet", started_by=staff_admin
        ),
        "token": token,
        "api_token": api_token,
        "personas": {
            "anonymous": None,
            "reviewer": reviewer,
            "other reviewer": other_reviewer,
            "staff only": staff_only,
            "adjudicator": adjudicator,
            "analyst": _user("analyst", perms=("annotation.view_agreement",)),
            "exporter": exporter,
            "judge watcher": _user("watcher", perms=("judging.view_judgerun",)),
            "judge operator": _user("operator", perms=("judging.change_judgerun",)),
            "admin": staff_admin,
            "group admin": _user("group admin", group="admin"),
        },
    }


# Reached: a page, a redirect after a POST, a form or state error for the empty POST (415: the
# API wants JSON), a file.
REACHED = {200, 201, 204, 206, 302, 400, 409, 415, 422}


@pytest.mark.parametrize("persona", PERSONAS)
def test_every_route_answers_each_role_as_the_table_says(client, world, persona):
    user = world["personas"][persona]
    if user is not None:
        client.force_login(user)
    for name, route in ROUTES.items():
        url = reverse(name, args=route.args(world))
        response = getattr(client, route.method)(url)
        code = response.status_code
        if user is None and name.startswith("api:") and name not in API_PAGES:
            assert code in (401, 403), (name, code)
        elif user is None:
            assert code == 302 and "/accounts/login/" in response["Location"], (name, code)
        elif persona in route.allowed:
            assert code in REACHED, (persona, name, code)
        else:
            assert code == 404, (persona, name, code)


def test_a_missing_object_is_404_even_for_an_admin(client, world):
    client.force_login(world["personas"]["admin"])
    checked = 0
    for name, route in ROUTES.items():
        args = route.args(world)
        if not args:
            continue
        missing = [999_999, *args[1:]]  # the object's id; a file name stays as it is
        url = reverse(name, args=missing)
        response = getattr(client, route.method)(url)
        assert response.status_code == 404, (name, response.status_code)
        checked += 1
    assert checked == 35
