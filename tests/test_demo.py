"""`make demo`'s setup, run as a user would on the embedded default, then the server answers."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from http.cookiejar import CookieJar
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def embedded_env(var_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    return {**env, "SPAVL_VAR_DIR": str(var_dir)}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    var_dir = tmp_path_factory.mktemp("demo-var")
    env = embedded_env(var_dir)
    setup = subprocess.run(
        ["make", "demo-setup"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert setup.returncode == 0, setup.stdout[-3000:] + setup.stderr[-3000:]
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{base}/healthz", timeout=1)
                break
            except OSError:
                time.sleep(0.2)
        yield {"base": base, "var": var_dir, "output": setup.stdout, "env": env}
    finally:
        server.terminate()
        server.wait(timeout=10)


def in_demo(env: dict[str, str], script: str) -> Any:
    """Run a Django script against the demo's database; it prints one JSON value."""
    out = subprocess.run(
        [sys.executable, "-c", f"import django, json; django.setup()\n{script}"],
        cwd=ROOT,
        env={**env, "DJANGO_SETTINGS_MODULE": "spavl_web.settings"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout)


# Every simulated review, in an order and with fields that do not depend on database ids.
SIMULATED_REVIEWS = """
from annotation.models import Review
rows = Review.objects.filter(reviewer__username__startswith="simulated-").order_by(
    "reviewer__username", "submitted_at", "pk")
print(json.dumps([[r.reviewer.username, r.pair.question.text, r.pair.response_a.text,
    r.pair.response_b.text, r.left_side, r.blind_verdict, r.final_verdict, r.is_gold,
    r.flag_other, r.taxonomy_correction_id is not None, r.active_seconds] for r in rows]))
"""
# How many of each thing the demo made, to see that a second setup makes none of them again.
DEMO_COUNTS = """
from django.contrib.auth.models import User
from annotation.models import (Adjudication, Assignment, Campaign, CampaignPair,
    ExportDefinition, FinalLabelChange, Pair, Review)
from judging.models import Judgement
print(json.dumps({model.__name__: model.objects.count() for model in (User, Campaign,
    CampaignPair, Assignment, Review, Adjudication, Pair, Judgement, FinalLabelChange,
    ExportDefinition)} | {"gold": CampaignPair.objects.filter(is_gold=True).count()}))
"""


def login(base: str, username: str, password: str) -> urllib.request.OpenerDirector:
    jar = CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    page = opener.open(f"{base}/accounts/login/").read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert token, "login page has no CSRF token"
    data = f"username={username}&password={password}&csrfmiddlewaretoken={token.group(1)}"
    request = urllib.request.Request(
        f"{base}/accounts/login/", data=data.encode(), headers={"Referer": f"{base}/"}
    )
    opener.open(request)
    return opener


def test_the_demo_setup_prints_the_accounts_it_created(demo):
    credentials = json.loads((demo["var"] / "demo-credentials.json").read_text())
    assert set(credentials) >= {"admin", "reviewer"}
    for username, password in credentials.items():
        assert f"{username}" in demo["output"] and password in demo["output"]


def test_the_demo_server_answers_and_the_reviewer_can_log_in(demo):
    assert urllib.request.urlopen(f"{demo['base']}/healthz").status == 200
    credentials = json.loads((demo["var"] / "demo-credentials.json").read_text())
    opener = login(demo["base"], "reviewer", credentials["reviewer"])
    home = opener.open(f"{demo['base']}/")
    assert home.status == 200 and "/accounts/login/" not in home.url


def test_the_demo_data_is_imported_paired_and_judged(demo):
    script = (
        "import django; django.setup();"
        "from annotation.models import Pair, Question, TaxonomyNode;"
        "from judging.models import Judgement;"
        "print(Question.objects.values('subcategory__parent__parent').distinct().count(),"
        " Pair.objects.count(), Judgement.objects.succeeded().count())"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={**demo["env"], "DJANGO_SETTINGS_MODULE": "spavl_web.settings"},
        capture_output=True,
        text=True,
    )
    domains, pairs, judged = map(int, out.stdout.split())
    assert domains == 6
    assert pairs > 50
    assert judged == pairs


def test_a_second_setup_changes_nothing_and_keeps_the_passwords(demo):
    before = (demo["var"] / "demo-credentials.json").read_text()
    counts = in_demo(demo["env"], DEMO_COUNTS)
    reviews = in_demo(demo["env"], SIMULATED_REVIEWS)
    again = subprocess.run(
        ["make", "demo-setup"],
        cwd=ROOT,
        env=demo["env"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert again.returncode == 0, again.stderr[-2000:]
    assert (demo["var"] / "demo-credentials.json").read_text() == before
    assert "(already there)" in again.stdout
    assert in_demo(demo["env"], DEMO_COUNTS) == counts
    assert in_demo(demo["env"], SIMULATED_REVIEWS) == reviews


def export(demo: dict, out: Path, *options: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "export_dataset", "--out", str(out), *options],
        cwd=ROOT,
        env=demo["env"],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_demo_exports_on_the_embedded_database(demo, tmp_path):
    import pyarrow.parquet as pq

    out = tmp_path / "export"
    result = export(demo, out, "--format", "spavl-parquet")
    assert result.returncode == 0, result.stderr[-2000:]
    splits = {path.name.split("-")[0] for path in (out / "data").glob("*.parquet")}
    assert splits == {"train", "validation", "test"}
    train = pq.read_table(next((out / "data").glob("train-*.parquet")))
    assert train.column_names == ["image", "question", "chosen", "rejected", "image_name"]
    assert train.num_rows > 0


def test_it_exports_the_pairs_people_confirmed(demo, tmp_path):
    import pyarrow.parquet as pq

    out = tmp_path / "people"
    result = export(demo, out, "--definition", "Demo: people-confirmed pairs")
    assert result.returncode == 0, result.stderr[-2000:]
    rows = sum(pq.read_table(path).num_rows for path in (out / "data").glob("*.parquet"))
    labelled = in_demo(
        demo["env"],
        "from annotation.models import Pair\n"
        "print(Pair.objects.filter(final_label__in=['confirmed', 'flipped', 'adjudicated'])"
        ".count())",
    )
    assert 0 < rows <= labelled


def test_the_agreement_page_answers_on_the_embedded_database(demo):
    credentials = json.loads((demo["var"] / "demo-credentials.json").read_text())
    opener = login(demo["base"], "admin", credentials["admin"])
    page = opener.open(f"{demo['base']}/agreement/")
    assert page.status == 200 and b"Judge against people" in page.read()


def test_it_seeds_a_finished_campaign_reviewed_by_three_simulated_reviewers(demo):
    campaign = in_demo(
        demo["env"],
        """
from django.contrib.auth.models import User
from annotation.models import Campaign, Review
campaign = Campaign.objects.get(name="Demo: simulated reviewers (finished)")
simulated = User.objects.filter(username__startswith="simulated-").order_by("username")
print(json.dumps({
    "active": campaign.is_active,
    "slots_left": sum(campaign.pairs.filter(is_gold=False).values_list("slots_left", flat=True)),
    "reviewers": sorted(campaign.reviewers.values_list("username", flat=True)),
    "usable_passwords": [user.has_usable_password() for user in simulated],
    "reviews": {user.username: Review.objects.filter(campaign=campaign, reviewer=user,
        submitted_at__isnull=False).count() for user in simulated},
    "verdicts": sorted(set(Review.objects.filter(campaign=campaign)
        .values_list("blind_verdict", flat=True))),
    "pairs": campaign.pairs.count(),
    "gold": list(campaign.pairs.filter(is_gold=True).values_list("gold_verdict", flat=True)),
    "gold_reviews": Review.objects.filter(campaign=campaign, is_gold=True).count(),
}))
""",
    )
    assert campaign["reviewers"] == ["simulated-1", "simulated-2", "simulated-3"]
    assert campaign["usable_passwords"] == [False, False, False]
    assert not campaign["active"] and campaign["slots_left"] == 0
    # Three reviews of every pair: each simulated reviewer reviewed each one, gold included.
    assert campaign["reviews"] == dict.fromkeys(campaign["reviewers"], campaign["pairs"])
    assert set(campaign["verdicts"]) > {"a", "b"}
    assert len(campaign["gold"]) == 1 and campaign["gold_reviews"] == 3
    assert "simulated campaign 'Demo: simulated reviewers (finished)' (created)" in demo["output"]


def test_the_agreement_page_shows_figures_with_intervals_and_the_simulated_note(demo):
    credentials = json.loads((demo["var"] / "demo-credentials.json").read_text())
    opener = login(demo["base"], "admin", credentials["admin"])
    page = opener.open(f"{demo['base']}/agreement/").read().decode()
    result = json.loads(opener.open(f"{demo['base']}/api/v1/agreement/").read())

    judge, people = result["judge_vs_people"], result["people_vs_people"]
    for figure in [*judge["raw"].values(), *judge["control"].values(), people["alpha"]]:
        assert figure["withheld"] is None and figure["low"] <= figure["estimate"] <= figure["high"]
        assert f"{figure['estimate']:.3f} <small>({figure['low']:.3f} to" in page
    assert "no data" not in page
    simulated = sum(row["reviews"] for row in people["reviewers"])
    assert (
        f"Includes {simulated} reviews by simulated demo reviewers "
        "(simulated-1, simulated-2, simulated-3)" in page
    )
    # The charts draw data: the confusion matrix and the reviewers' left-side bars.
    assert sum(map(sum, judge["confusion"]["rows"])) == judge["raw"]["percent"]["n"]
    assert all(row["left_side"]["withheld"] is None for row in people["reviewers"])
    assert page.count('role="img"') >= 6


def test_the_adjudication_queue_lists_the_pairs_the_simulated_reviewers_disagree_on(demo):
    credentials = json.loads((demo["var"] / "demo-credentials.json").read_text())
    opener = login(demo["base"], "adjudicator", credentials["adjudicator"])
    queue = opener.open(f"{demo['base']}/adjudication/").read().decode()
    decided = in_demo(
        demo["env"],
        "from annotation.models import Adjudication\n"
        "print(json.dumps(sorted({a.decided_by.username for a in"
        " Adjudication.objects.filter(status='decided').select_related('decided_by')})))",
    )
    assert "Nothing waiting." not in queue
    assert queue.count("Demo: simulated reviewers (finished)") >= 5
    assert decided == ["adjudicator"]


def test_it_gives_the_same_reviews_on_a_fresh_database_for_the_same_seed(demo, tmp_path):
    env = embedded_env(tmp_path)
    for command in (["migrate", "--no-input"], ["demo_setup", "--seed", "0"]):
        step = subprocess.run(
            [sys.executable, "manage.py", *command],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert step.returncode == 0, step.stderr[-2000:]
    assert in_demo(env, SIMULATED_REVIEWS) == in_demo(demo["env"], SIMULATED_REVIEWS)
