"""The judge against people on pairs of its own model family and on the others: the exact
counts and figures in the service, on the page, in the CSV and the API; configurations recording
their family; the data migration's backfill; and the cache seeing what the section reads."""

from __future__ import annotations

import csv
import importlib
import io
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.apps import apps
from django.contrib.auth.models import User
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from annotation.models import Pair, Response
from annotation.services.agreement.cache import data_version
from annotation.services.agreement.dashboard import build_dashboard
from annotation.services.agreement.queries import AgreementSlice
from annotation.services.agreement.stats import wilson_interval
from judging.models import GenerationConfiguration, JudgeConfiguration, Judgement
from tests.factories import (
    make_agreement_campaign,
    make_agreement_review,
    make_judgement,
    make_question,
    make_response,
)

pytestmark = pytest.mark.django_db

QWEN_JUDGE = "Qwen/Qwen2-VL-7B-Instruct"
SECTION = "Judge vs people: judge's own family vs other families"


@pytest.fixture(autouse=True)
def empty_cache() -> None:
    cache.clear()


@dataclass
class Seeded:
    qwen: JudgeConfiguration
    small_qwen: JudgeConfiguration


@dataclass
class Reviewing:
    """Who reviews the seeded pairs: one person, in one campaign."""

    campaign: Any
    person: User


def judge_configuration(*, model_id: str, family: str) -> JudgeConfiguration:
    return JudgeConfiguration.objects.create(
        backend="transformers",
        model_id=model_id,
        model_revision="0123abc",
        prompt_version="pairwise-v1",
        dtype="bfloat16",
        model_family=family,
    )


def judged_pair(
    *,
    models: tuple[str, str],
    configuration: JudgeConfiguration,
    prefers: str,
    people: str | None,
    reviewing: Reviewing,
) -> Pair:
    """A pair of responses by ``models`` (A, B) that the configuration judged, preferring side
    ``prefers``, and that one person reviewed (blind verdict ``people``) unless it is None."""
    question = make_question()
    pair = Pair.objects.create(
        question=question,
        response_a=make_response(question=question, model_name=models[0]),
        response_b=make_response(question=question, model_name=models[1]),
        origin="imported",
    )
    judge(pair=pair, configuration=configuration, prefers=prefers)
    if people is not None:
        make_agreement_review(
            campaign=reviewing.campaign, pair=pair, reviewer=reviewing.person, blind=people
        )
    return pair


def judge(*, pair: Pair, configuration: JudgeConfiguration, prefers: str) -> None:
    p = 0.8 if prefers == "a" else 0.2
    Judgement.objects.create(
        pair=pair,
        configuration=configuration,
        status="ok",
        p_a_better=p,
        p_a_first=p,
        p_a_second=p,
        prefers_a=prefers == "a",
    )


def other(side: str) -> str:
    return "b" if side == "a" else "a"


def seed() -> Seeded:
    """The case every test reads (judge family "qwen"):

    - 40 pairs of a Qwen response against Gemini's, the Qwen one on side A, then B, in turn: the
      judge prefers the Qwen response on 30 of them, people on 20 (the first 10 and last 10),
      so judge and people agree on 10;
    - one more such pair where people say tie, and one nobody reviewed;
    - 2 pairs of two Qwen responses, people agreeing with the judge on one;
    - 35 pairs of LLaVA against GPT-4V (other families): the judge and people agree on 28;
    - 3 pairs with a model of unknown family against CogVLM, one reviewed (agreeing);
    - a second Qwen configuration that judged 3 own-family pairs and nothing else;
    - a baseline configuration (no family) that judged every pair: it gets no row.
    """
    reviewing = Reviewing(
        campaign=make_agreement_campaign(), person=User.objects.create_user("family-reviewer")
    )
    qwen = judge_configuration(model_id=QWEN_JUDGE, family="qwen")
    small_qwen = judge_configuration(model_id="Qwen/Qwen2.5-VL-3B-Instruct", family="qwen")
    cases: list[tuple[tuple[str, str], str, str | None]] = []
    for i in range(40):
        own = "a" if i % 2 == 0 else "b"
        models = ("Qwen-VL-Chat", "gemini-pro") if own == "a" else ("gemini-pro", "Qwen-VL-Chat")
        people = own if i < 10 or i >= 30 else other(own)
        cases.append((models, own if i < 30 else other(own), people))
    cases += [(("QwenVL", "gpt4v"), "a", "tie"), (("gpt4v", "QwenVL"), "a", None)]
    cases += [(("Qwen-VL-Chat", "QwenVL"), "a", people) for people in ("a", "b")]
    cases += [(("LLaVA-1.5-7b", "gpt4v"), "a", "a" if i < 28 else "b") for i in range(35)]
    cases += [(("model-x", "CogVLM"), "a", people) for people in ("a", None, None)]
    pairs = [
        judged_pair(
            models=models, configuration=qwen, prefers=prefers, people=people, reviewing=reviewing
        )
        for models, prefers, people in cases
    ]
    for pair in pairs[:3]:
        judge(pair=pair, configuration=small_qwen, prefers="a")
    for pair in pairs:
        make_judgement(pair=pair, p_a_better=0.7)  # the baseline: no family, no row
    return Seeded(qwen=qwen, small_qwen=small_qwen)


def rows_by_configuration(**slice_fields: Any) -> dict[int, Any]:
    result = build_dashboard(slice_=AgreementSlice(**slice_fields))
    return {row["configuration_id"]: row for row in result["own_family"]}


def test_it_splits_the_judges_agreement_with_people_at_its_family_line(spavl_taxonomy):
    seeded = seed()
    row = rows_by_configuration()[seeded.qwen.pk]
    assert row["family"] == "qwen"
    assert row["configuration"] == str(seeded.qwen)
    # Own family: 40 + tie + unreviewed + 2 of two Qwen responses; compared: all but one.
    assert (row["own"]["pairs"], row["own"]["compared"]) == (44, 43)
    percent = row["own"]["agreement"]["percent"]
    assert percent["n"] == 43
    assert percent["estimate"] == pytest.approx(11 / 43)
    assert percent["low"] < 11 / 43 < percent["high"]
    # Other families: 35 LLaVA/GPT-4V and 3 with an unknown model, 36 of them reviewed.
    assert (row["other"]["pairs"], row["other"]["compared"]) == (38, 36)
    assert row["other"]["agreement"]["percent"]["estimate"] == pytest.approx(29 / 36)
    assert row["other"]["agreement"]["percent"]["n"] == 36
    assert row["other_unknown"] == 3


def test_it_compares_how_often_the_judge_and_people_prefer_the_judges_kin(spavl_taxonomy):
    seeded = seed()
    preference = rows_by_configuration()[seeded.qwen.pk]["self_preference"]
    # Over the 40 pairs with one Qwen response where people chose a side (the tie is not one).
    judge_share, people_share = wilson_interval(k=30, n=40), wilson_interval(k=20, n=40)
    assert preference["judge"] == {
        "estimate": 0.75,
        "n": 40,
        "low": pytest.approx(judge_share.low),
        "high": pytest.approx(judge_share.high),
        "withheld": None,
    }
    assert preference["people"]["estimate"] == 0.5
    assert preference["people"]["n"] == 40
    assert preference["people"]["low"] == pytest.approx(people_share.low)
    assert preference["both_own"] == 2


def test_small_groups_keep_their_n_and_lose_their_number(spavl_taxonomy):
    seeded = seed()
    row = rows_by_configuration()[seeded.small_qwen.pk]
    assert (row["own"]["pairs"], row["own"]["compared"]) == (3, 3)
    assert row["own"]["agreement"]["percent"]["estimate"] is None
    assert row["own"]["agreement"]["percent"]["withheld"] == "too few for a reliable figure"
    assert (row["other"]["pairs"], row["other"]["compared"]) == (0, 0)
    assert row["other"]["agreement"]["percent"] == {
        "estimate": None,
        "n": 0,
        "low": None,
        "high": None,
        "withheld": "no data",
    }
    assert row["self_preference"]["judge"]["n"] == 3
    assert row["self_preference"]["judge"]["estimate"] is None


def test_only_configurations_with_a_family_get_a_row_and_the_slice_narrows_them(spavl_taxonomy):
    seeded = seed()
    assert set(rows_by_configuration()) == {seeded.qwen.pk, seeded.small_qwen.pk}
    assert set(rows_by_configuration(configuration_id=seeded.qwen.pk)) == {seeded.qwen.pk}
    baseline = JudgeConfiguration.objects.get(backend="baseline")
    assert rows_by_configuration(configuration_id=baseline.pk) == {}
    # These judgements belong to no run: a run's slice has none of them.
    assert rows_by_configuration(judge_run_id=10**9) == {}


def test_a_family_the_responses_do_not_share_puts_every_pair_on_the_other_side(spavl_taxonomy):
    seed()
    llava = judge_configuration(model_id="llava-hf/llava-1.5-7b-hf", family="llava")
    pair = Pair.objects.filter(response_a__model_name="gemini-pro").first()
    assert pair is not None
    judge(pair=pair, configuration=llava, prefers="a")
    row = rows_by_configuration()[llava.pk]
    assert (row["own"]["pairs"], row["other"]["pairs"], row["other"]["compared"]) == (0, 1, 1)
    assert row["self_preference"]["judge"]["n"] == 0


def test_it_shows_the_section_on_the_page_in_the_csv_and_in_the_api(spavl_taxonomy, staff_admin):
    seeded = seed()
    client = Client()
    client.force_login(staff_admin)
    page = client.get("/agreement/")
    html = page.content.decode()
    section = html[html.index(SECTION) : html.index("People against people")]
    assert str(seeded.qwen) in section
    assert "0.256" in section and "n = 43" in section  # own family: 11 / 43
    assert "0.806" in section and "n = 36" in section  # other families: 29 / 36
    assert "0.750" in section and "0.500" in section and "n = 40" in section
    assert "3 other-family pairs have a response of unknown family" in section
    assert "2 own-family pairs have both responses of the family" in section
    assert "no pairs" in section  # the small configuration's other families
    assert "too few for a reliable figure" in section
    result = page.context["result"]
    api = client.get("/api/v1/agreement/").json()
    assert api["own_family"] == result["own_family"]
    rows = list(csv.DictReader(io.StringIO(client.get("/agreement.csv").content.decode())))
    group = f"configuration {seeded.qwen.pk} (qwen)"
    mine = {row["measure"]: row for row in rows if row["group"] == group}
    assert mine["own_family_percent"]["n"] == "43"
    assert float(mine["own_family_percent"]["estimate"]) == pytest.approx(11 / 43)
    assert mine["other_family_pairs"]["estimate"] == "38"
    assert float(mine["judge_prefers_own"]["estimate"]) == 0.75
    assert float(mine["people_prefer_own"]["estimate"]) == 0.5


def test_the_page_says_when_no_judge_has_a_family(spavl_taxonomy, staff_admin):
    question = make_question()
    pair = Pair.objects.create(
        question=question,
        response_a=make_response(question=question, model_name="Qwen-VL-Chat"),
        response_b=make_response(question=question, model_name="gpt4v"),
        origin="imported",
    )
    make_judgement(pair=pair)
    client = Client()
    client.force_login(staff_admin)
    html = client.get("/agreement/").content.decode()
    assert "No judge configuration with a known model family judged pairs" in html


def test_the_section_costs_the_same_queries_whatever_the_number_of_pairs(spavl_taxonomy):
    seeded = seed()
    with CaptureQueriesContext(connection) as without_families:
        build_dashboard(slice_=AgreementSlice(configuration_id=-1))
    with CaptureQueriesContext(connection) as seeded_queries:
        build_dashboard(slice_=AgreementSlice())
    reviewing = Reviewing(campaign=make_agreement_campaign(name="more"), person=User.objects.get())
    for _ in range(20):
        models = ("Qwen-VL-Chat", "LLaVA-1.5-7b")
        judged_pair(
            models=models, configuration=seeded.qwen, prefers="a", people="b", reviewing=reviewing
        )
    with CaptureQueriesContext(connection) as more:
        build_dashboard(slice_=AgreementSlice())
    assert len(more) == len(seeded_queries)
    # Without a configuration with a family the section asks one query; with them six more:
    # the model names, the families generation configurations recorded for them, the family
    # table's drop, create and fill, and the counts.
    assert len(seeded_queries) == len(without_families) + 6


def test_a_model_name_or_a_family_changing_moves_the_data_version(spavl_taxonomy):
    if connection.vendor != "postgresql":
        pytest.skip("the write counters are PostgreSQL triggers")
    seeded = seed()
    seen = {data_version()}
    Response.objects.filter(model_name="gemini-pro").update(model_name="Qwen2-VL-7B")
    seen.add(data_version())
    JudgeConfiguration.objects.filter(pk=seeded.qwen.pk).update(model_family="llava")
    seen.add(data_version())
    assert len(seen) == 3


def test_the_cached_page_recomputes_when_a_response_model_is_renamed(spavl_taxonomy, staff_admin):
    seeded = seed()
    client = Client()
    client.force_login(staff_admin)
    before = client.get("/agreement/").context["result"]["own_family"]
    Response.objects.filter(model_name="gemini-pro").update(model_name="Qwen2-VL-7B")
    after = client.get("/agreement/").context["result"]["own_family"]
    qwen_before = next(row for row in before if row["configuration_id"] == seeded.qwen.pk)
    qwen_after = next(row for row in after if row["configuration_id"] == seeded.qwen.pk)
    assert qwen_before["self_preference"]["both_own"] == 2
    assert qwen_after["self_preference"]["both_own"] == 42


def test_the_migration_backfills_families_from_the_model_id_and_type(db):
    backfill = importlib.import_module("judging.migrations.0007_model_family").backfill
    hub = JudgeConfiguration.objects.create(
        backend="transformers", model_id=QWEN_JUDGE, prompt_version="v1"
    )
    baseline = JudgeConfiguration.objects.create(backend="baseline", prompt_version="v1")
    kept = JudgeConfiguration.objects.create(
        backend="transformers", model_id="/models/judge", prompt_version="v1", model_family="phi"
    )
    typed = GenerationConfiguration.objects.create(
        model_id="/checkpoints/run-7",
        model_type="llava_next",
        prompt_version="v1",
        config={},
        config_sha256="0" * 64,
    )
    named = GenerationConfiguration.objects.create(
        model_id="OpenGVLab/InternVL2_5-8B", prompt_version="v1", config={}, config_sha256="1" * 64
    )
    backfill(apps, None)
    rows: list[Any] = [hub, baseline, kept, typed, named]
    for row in rows:
        row.refresh_from_db(fields=["model_family"])
    assert [row.model_family for row in rows] == ["qwen", "", "phi", "llava", "internvl"]


def test_a_loaded_judge_records_its_family_from_the_models_config(db, tmp_path: Path):
    pytest.importorskip("torch")
    from judging.engine import load_judge
    from judging.engine.testing import build_tiny_qwen2vl
    from judging.services.runs import get_or_create_configuration

    # A folder named for nothing: the family can only come from config.json's model_type.
    path = build_tiny_qwen2vl(tmp_path / "judge-under-test")
    judge = load_judge(backend="transformers", model=str(path), device="cpu")
    configuration = get_or_create_configuration(judge=judge, max_pixels=448 * 448)
    assert configuration.model_family == "qwen"
    baseline = get_or_create_configuration(judge=load_judge(backend="baseline"), max_pixels=1)
    assert baseline.model_family == ""


def test_a_configuration_recorded_without_a_family_gets_the_loaded_models(db, tmp_path: Path):
    pytest.importorskip("torch")
    from judging.engine import load_judge
    from judging.engine.testing import build_tiny_llava
    from judging.services.runs import get_or_create_configuration

    judge = load_judge(
        backend="transformers", model=str(build_tiny_llava(tmp_path / "j")), device="cpu"
    )
    before = get_or_create_configuration(judge=judge, max_pixels=448 * 448)
    JudgeConfiguration.objects.filter(pk=before.pk).update(model_family="")
    after = get_or_create_configuration(judge=judge, max_pixels=448 * 448)
    assert after.pk == before.pk
    assert JudgeConfiguration.objects.get(pk=before.pk).model_family == "llava"


def own_family_numbers() -> list[dict[str, Any]]:
    """The seeded case's own-family rows without the ids that differ between databases."""
    seed()
    rows: list[dict[str, Any]] = json.loads(
        json.dumps(build_dashboard(slice_=AgreementSlice())["own_family"])
    )
    for row in rows:
        row.pop("configuration_id")
    return rows


SQLITE_SCRIPT = """
import json, os, sys
sys.path.insert(0, os.getcwd())
import django
django.setup()
from django.core.management import call_command
from django.db import connection
call_command("migrate", verbosity=0)
from annotation.services.taxonomy import load_taxonomy
load_taxonomy()
from tests.annotation.test_agreement_family import own_family_numbers
assert connection.vendor == "sqlite", connection.vendor
print("RESULT " + json.dumps(own_family_numbers()))
"""


def test_it_gives_the_postgresql_numbers_on_sqlite(spavl_taxonomy, tmp_path):
    on_postgres = own_family_numbers()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env |= {"SPAVL_VAR_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "spavl_web.settings"}
    done = subprocess.run(
        [sys.executable, "-c", SQLITE_SCRIPT],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    (line,) = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert json.loads(line.removeprefix("RESULT ")) == on_postgres
    assert len(on_postgres) == 2
