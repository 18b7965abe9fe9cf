"""The agreement dashboard on the embedded SQLite database (``make demo``) gives the numbers
PostgreSQL gives: the same case is seeded in a subprocess without DATABASE_URL and in the test
database, and every figure of the page, the CSV, the API and the export summary is compared."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.test import Client

from annotation.services.agreement.dashboard import agreement_summary_for_export, build_dashboard
from annotation.services.agreement.queries import AgreementSlice
from tests.factories import (
    make_agreement_campaign,
    make_agreement_review,
    make_judgement,
    make_pair,
    make_pool_pair,
)

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]


def seed_case() -> list[int]:
    """Reviews with majorities, ties, cannot-judge, gold, control slice, flagged routing,
    anchoring and an adjudication; returns the first 40 pair ids (the "export")."""
    from annotation.models import Adjudication

    people = [User.objects.create_user(f"person{i}") for i in range(3)]
    campaign = make_agreement_campaign()
    pair_ids = []
    for i in range(60):
        pair = make_pair(subcategory_key=("bully", "sexism", None)[i % 3])
        p = (0.93, 0.71, 0.27, 0.12, 0.58)[i % 5]
        make_judgement(
            pair=pair,
            p_a_better=p,
            p_a_first=p + 0.05,
            p_a_second=0.45 if i % 4 == 0 else p - 0.05,
            p_unsafe_a=0.1 if i % 2 else 0.6,
            p_unsafe_b=0.9 if i % 3 else 0.2,
        )
        pair_ids.append(pair.pk)
        if i >= 50:
            make_pool_pair(campaign=campaign, pair=pair, flagged=i % 2 == 0)
            continue
        for j, person in enumerate(people[: 2 + i % 2]):
            blind = ("a", "b", "tie", "a", "both_unsafe", "cannot_judge")[(i + j * (i % 3)) % 6]
            blind = "cannot_judge" if i == 47 else blind
            make_agreement_review(
                campaign=campaign,
                pair=pair,
                reviewer=person,
                blind=blind,
                final="a" if j == 0 and i % 7 == 0 else None,
                left_side="a" if (i + j) % 3 else "b",
                flagged=i % 2 == 0,
                in_control=i % 5 == 0,
                gold_verdict="a" if i == 49 else "",
            )
        if i == 3:
            Adjudication.objects.create(
                campaign_pair=make_pool_pair(campaign=campaign, pair=pair),
                pair=pair,
                reason="disagree",
                status="decided",
                verdict="b",
            )
    return pair_ids[:40]


def key_numbers(*, export_ids: list[int]) -> dict[str, Any]:
    """The dashboard without ids that differ between databases, the export summary, and what
    the page, the CSV and the API answer, as JSON-ready data."""
    result: dict[str, Any] = json.loads(
        json.dumps(build_dashboard(slice_=AgreementSlice(), target=0.8))
    )
    result.pop("slice")
    for reviewer in result["people_vs_people"]["reviewers"]:
        reviewer.pop("reviewer_id")
    client = Client()
    client.force_login(User.objects.create_superuser("sqlite-admin"))
    cache.clear()
    responses = {
        url: client.get(url).status_code
        for url in ("/agreement/", "/agreement.csv", "/api/v1/agreement/?campaign=1&week=2026-W05")
    }
    summary = agreement_summary_for_export(pair_ids_or_queryset=export_ids)
    return json.loads(json.dumps({"dashboard": result, "summary": summary, "http": responses}))


SCRIPT = """
import json, os, sys
sys.path.insert(0, os.getcwd())
import django
django.setup()
from django.core.management import call_command
from django.db import connection
call_command("migrate", verbosity=0)
from annotation.services.taxonomy import load_taxonomy
load_taxonomy()
from tests.annotation.test_agreement_sqlite import key_numbers, seed_case
assert connection.vendor == "sqlite", connection.vendor
print("RESULT " + json.dumps(key_numbers(export_ids=seed_case())))
"""


def run_on_sqlite(tmp_path: Path) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env |= {"SPAVL_VAR_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "spavl_web.settings"}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    (line,) = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    return json.loads(line.removeprefix("RESULT "))


def assert_same(got: Any, want: Any, *, path: str = "") -> None:
    if isinstance(want, dict):
        assert isinstance(got, dict) and got.keys() == want.keys(), path
        for key in want:
            assert_same(got[key], want[key], path=f"{path}.{key}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), path
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            assert_same(g, w, path=f"{path}[{i}]")
    elif isinstance(want, float):
        assert got == pytest.approx(want, rel=1e-9, abs=1e-12), path
    else:
        assert got == want, path


def test_it_gives_the_postgresql_numbers_on_sqlite(spavl_taxonomy, tmp_path):
    on_postgres = key_numbers(export_ids=seed_case())
    assert on_postgres["dashboard"]["counts"]["no_majority"] > 0
    assert on_postgres["dashboard"]["counts"]["cannot_judge"] > 0
    assert on_postgres["dashboard"]["judge_vs_people"]["weighted"]["percent"]["n"] > 0
    assert on_postgres["summary"]["counts"]["with_human_verdict"] > 0
    on_sqlite = run_on_sqlite(tmp_path)
    assert on_sqlite["http"] == dict.fromkeys(on_postgres["http"], 200)
    assert_same(on_sqlite["dashboard"], on_postgres["dashboard"])
    assert_same(on_sqlite["summary"], on_postgres["summary"])
