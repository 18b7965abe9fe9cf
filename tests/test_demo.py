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


def test_the_demo_exports_on_the_embedded_database(demo, tmp_path):
    import pyarrow.parquet as pq

    out = tmp_path / "export"
    result = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "export_dataset",
            "--format",
            "spavl-parquet",
            "--out",
            str(out),
        ],
        cwd=ROOT,
        env=demo["env"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    splits = {path.name.split("-")[0] for path in (out / "data").glob("*.parquet")}
    assert splits == {"train", "validation", "test"}
    train = pq.read_table(next((out / "data").glob("train-*.parquet")))
    assert train.column_names == ["image", "question", "chosen", "rejected", "image_name"]
    assert train.num_rows > 0


def test_the_agreement_page_answers_on_the_embedded_database(demo):
    credentials = json.loads((demo["var"] / "demo-credentials.json").read_text())
    opener = login(demo["base"], "admin", credentials["admin"])
    page = opener.open(f"{demo['base']}/agreement/")
    assert page.status == 200 and b"Judge against people" in page.read()
