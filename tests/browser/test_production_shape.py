"""The deployment as docker-compose.yml defines it, run as processes (Docker cannot run here).

Each service's command and environment are read from the compose file; only what a container
would supply differently is substituted: the local PostgreSQL (the test database) and Redis,
loopback instead of 0.0.0.0, a temporary folder for /var/lib/spavl, each container's hostname,
and the secrets .env would hold. Then one full cycle over HTTP, as a team would use it:
import, judge from the judge page, review in Chromium, export through the API, download.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shlex
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
import urllib.response
from collections.abc import Iterator
from http.cookiejar import CookieJar, DefaultCookiePolicy
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.conf import settings
from django.contrib.auth.models import User

from annotation.demo.files import write_demo_dataset
from annotation.models import Campaign, ExportDefinition
from annotation.services.campaigns import CampaignRules, create_campaign
from judging.models import GenerationRun, JudgeRun, RunStatus
from spavl_web.tokens import create_token
from tests.test_demo import free_port
from tests.workers import REPO, wait_for, worker_database_url

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.django_db(transaction=True)]

COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
APP_SERVICES = ["web", "worker", "judge-worker", "generate-worker", "beat"]
CONTAINER_VAR = "/var/lib/spavl"  # the Dockerfile's SPAVL_VAR_DIR and the volumes' root
PASSWORD = "prod-shape-password-1"


def dockerfile_env() -> dict[str, str]:
    line = next(
        ln for ln in (REPO / "Dockerfile").read_text().splitlines() if ln.startswith("ENV ")
    )
    return dict(pair.split("=", 1) for pair in shlex.split(line[4:]))


def expand(value: str, dotenv: dict[str, str]) -> str:
    """Compose's ${NAME:?message} and ${NAME:-default}, from what .env would hold."""

    def one(match: re.Match[str]) -> str:
        name, op, rest = match.group(1), match.group(2), match.group(3)
        if name in dotenv:
            return dotenv[name]
        if op == ":?":
            raise AssertionError(f"compose needs {name}: {rest}")
        return rest or ""

    return re.sub(r"\$\{(\w+)(:\?|:-)?([^}]*)\}", one, value)


class Stack:
    def __init__(self, *, var: Path, port: int, redis_url: str) -> None:
        self.var, self.port, self.redis_url = var, port, redis_url
        self.base = f"http://127.0.0.1:{port}"
        self.dotenv = {
            "SECRET_KEY": secrets.token_urlsafe(50),
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "CSRF_TRUSTED_ORIGINS": self.base,
            # The test's requests stand in for the TLS proxy: they come from loopback.
            "SPAVL_TRUSTED_PROXIES": "127.0.0.1",
            "POSTGRES_PASSWORD": "unused-the-test-database-is-local",
        }
        self.processes: dict[str, subprocess.Popen] = {}

    def localise(self, text: str) -> str:
        return (
            text.replace("0.0.0.0:8000", f"127.0.0.1:{self.port}")
            .replace("127.0.0.1:8000", f"127.0.0.1:{self.port}")
            .replace(CONTAINER_VAR, str(self.var))
        )

    def env(self, name: str) -> dict[str, str]:
        service = COMPOSE["services"][name]
        env = {**dockerfile_env(), **{k: str(v) for k, v in service["environment"].items()}}
        env = {key: self.localise(expand(value, self.dotenv)) for key, value in env.items()}
        assert env["DATABASE_URL"].startswith("postgres://spavl:")
        assert env["REDIS_URL"] == "redis://redis:6379/0"
        env["DATABASE_URL"], env["REDIS_URL"] = worker_database_url(), self.redis_url
        venv_bin = str(Path(sys.executable).parent)
        base = {k: v for k, v in os.environ.items() if not k.startswith(("SPAVL_", "DJANGO"))}
        return {**base, **env, "PATH": f"{venv_bin}:{os.environ['PATH']}", "HOSTNAME": name}

    def command(self, name: str) -> list[str]:
        raw = COMPOSE["services"][name]["command"]
        words = shlex.split(raw) if isinstance(raw, str) else list(raw)
        words = [self.localise(word) for word in words]
        if words[:4] == ["celery", "-A", "spavl_web", "worker"]:
            words += ["-n", f"celery@{name}"]  # each container has its own hostname
        return words

    def start(self, name: str) -> None:
        log = (self.var / f"{name}.log").open("w")
        self.processes[name] = subprocess.Popen(
            self.command(name),
            cwd=REPO,
            env=self.env(name),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def healthy(self, name: str) -> bool:
        test = COMPOSE["services"][name]["healthcheck"]["test"]
        if name == "postgres":
            command = ["pg_isready", "-h", "127.0.0.1"]
        elif name == "redis":
            command = ["redis-cli", "-u", self.redis_url, "ping"]
        elif test[0] == "CMD-SHELL":
            command = ["sh", "-c", self.localise(test[1].replace("$$", "$"))]
        else:
            command = [self.localise(word) for word in test[1:]]
        result = subprocess.run(
            command,
            cwd=REPO,
            env=self.env(name) if name in APP_SERVICES else None,
            capture_output=True,
            text=True,
            timeout=60,
        )
        return result.returncode == 0

    def manage(self, *args: str) -> str:
        """What `docker compose exec web python manage.py ...` runs."""
        result = subprocess.run(
            ["python", "manage.py", *args],
            cwd=REPO,
            env=self.env("web"),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
        return result.stdout

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, 15)
        for name, process in self.processes.items():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, 9)
            print(f"--- {name}\n{(self.var / f'{name}.log').read_text()[-3000:]}")


@pytest.fixture
def stack(broker: Any, tmp_path: Path) -> Iterator[Stack]:
    stack = Stack(var=tmp_path / "var", port=free_port(), redis_url=settings.REDIS_URL)
    stack.var.mkdir()
    # The image build's step: hashed, compressed static files for whitenoise.
    stack.manage("collectstatic", "--no-input")
    for name in APP_SERVICES:
        stack.start(name)
    try:
        yield stack
    finally:
        stack.stop()


class BehindTls(DefaultCookiePolicy):
    """The TLS terminator's side: secure cookies travel over the loopback hop."""

    def return_ok_secure(self, cookie: Any, request: Any) -> bool:
        return True


def https_opener() -> urllib.request.OpenerDirector:
    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(CookieJar(policy=BehindTls()))
    )
    opener.addheaders = [("X-Forwarded-Proto", "https")]
    return opener


def post_form(
    opener: urllib.request.OpenerDirector,
    stack: Stack,
    path: str,
    *,
    token_from: str,
    **fields: str,
) -> urllib.response.addinfourl:
    """Post a form as the browser would: CSRF token from the page it is on, same Origin."""
    page = opener.open(stack.base + token_from).read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert token, f"no CSRF token on {token_from}"
    body = urllib.parse.urlencode({**fields, "csrfmiddlewaretoken": token.group(1)})
    request = urllib.request.Request(
        stack.base + path, data=body.encode(), headers={"Origin": stack.base}
    )
    return opener.open(request)


def log_in(stack: Stack, username: str) -> urllib.request.OpenerDirector:
    opener = https_opener()
    fields = {"username": username, "password": PASSWORD}
    signed_in = post_form(
        opener, stack, "/accounts/login/", token_from="/accounts/login/", **fields
    )
    assert signed_in.geturl().rstrip("/") == stack.base
    return opener


def test_the_compose_services_run_a_full_cycle_over_http(stack, tmp_path, chromium, artifacts):
    def web_healthy() -> bool:
        return stack.healthy("web")

    wait_for(web_healthy, timeout=120)
    # The web service's own start: migrations and the taxonomy, then gunicorn.
    admin = User.objects.create_superuser("ops", password=PASSWORD)

    # Import a generated file and pair it, as an operator would through `compose exec web`.
    write_demo_dataset(out=tmp_path / "data", questions=12, seed=5)
    stack.manage(
        "import_data",
        "--format",
        "responses-jsonl",
        str(tmp_path / "data" / "responses.jsonl"),
        "--image-root",
        str(tmp_path / "data"),
        "--no-progress",
    )
    opener = log_in(stack, "ops")

    # Two more "models" answer every question from the generation page, on the generate worker
    # (torch-free baseline styles: the compose service is the one a GPU model would run on).
    post_form(
        opener,
        stack,
        "/judging/generation/start/",
        token_from="/judging/generation/",
        models="baseline:cautious\nbaseline:helpful",
        questions="missing",
        samples="1",
        max_new_tokens="64",
        temperature="0",
        top_p="1",
        seed="0",
    )

    def generated() -> bool:
        generation = GenerationRun.objects.order_by("pk").last()
        return generation is not None and not generation.is_active

    wait_for(generated, timeout=90)
    generation = GenerationRun.objects.get()
    assert (generation.status, generation.created, generation.failed) == (
        RunStatus.FINISHED,
        24,
        0,
    ), generation.error
    stack.manage("make_pairs", "--seed", "0", "--per-question", "3")

    # Judge from the judge page; the judge worker (baseline backend) does the work.
    post_form(
        opener,
        stack,
        "/judging/runs/start/",
        token_from="/judging/runs/",
        backend="baseline",
        pairs="unjudged",
    )

    def judged() -> bool:
        run = JudgeRun.objects.order_by("pk").last()
        return run is not None and run.status == RunStatus.FINISHED

    wait_for(judged, timeout=90)
    run = JudgeRun.objects.get()
    assert run.done == run.total > 0 and run.failed == 0

    # Review a pair in Chromium through the production server and its static files.
    create_campaign(
        name="Production review",
        created_by=admin,
        reviewers=[admin],
        judge_run=run,
        rules=CampaignRules(control_share=0.0),
        seed=1,
    )
    assert Campaign.objects.count() == 1
    review_in_browser(stack, chromium, artifacts)

    # Export through the API and check every file against the manifest.
    ExportDefinition.objects.create(name="prod-shape", created_by=admin)
    _, secret = create_token(user=admin, name="prod-shape export", scopes=["export"])
    api = https_opener()
    api.addheaders += [("Authorization", f"Token {secret}")]
    start = urllib.request.Request(
        f"{stack.base}/api/v1/exports/",
        data=json.dumps({"definition": "prod-shape"}).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        created = json.load(api.open(start))
    except urllib.error.HTTPError as error:
        raise AssertionError(error.read().decode()) from error

    def exported() -> bool:
        job = json.load(api.open(f"{stack.base}/api/v1/exports/{created['id']}/"))
        return job["status"] in {"finished", "failed"}

    wait_for(exported, timeout=90)
    job = json.load(api.open(f"{stack.base}/api/v1/exports/{created['id']}/"))
    assert job["status"] == "finished", job["error"]
    files_url = f"{stack.base}/api/v1/exports/{job['id']}/files"
    manifest = json.load(api.open(f"{files_url}/manifest.json"))
    assert {entry["name"] for entry in manifest["files"]} | {"manifest.json"} == {
        entry["name"] for entry in job["files"]
    }
    for entry in manifest["files"]:
        body = api.open(f"{files_url}/{entry['name']}").read()
        assert (len(body), hashlib.sha256(body).hexdigest()) == (entry["size"], entry["sha256"])

    # Every service's own health check passes, the recovery sweep's included.
    def all_healthy() -> bool:
        return all(stack.healthy(name) for name in COMPOSE["services"])

    wait_for(all_healthy, timeout=120)


def review_in_browser(stack: Stack, chromium: Any, artifacts: Path) -> None:
    context = chromium.new_context(
        extra_http_headers={"X-Forwarded-Proto": "https"}, viewport={"width": 1400, "height": 950}
    )
    assets: dict[str, tuple[int, str]] = {}
    context.on(
        "response",
        lambda r: (
            assets.__setitem__(r.url, (r.status, r.headers.get("content-type", "")))
            if "/static/" in r.url
            else None
        ),
    )
    page = context.new_page()
    # The pages run under their Content-Security-Policy: nothing they do may be refused.
    refused: list[str] = []
    page.on(
        "console",
        lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None,
    )
    page.goto(f"{stack.base}/accounts/login/")
    page.fill("#id_username", "ops")
    page.fill("#id_password", PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_selector("text=Your campaigns")
    page.click("button:has-text('Review')")
    page.wait_for_function(
        "() => { const r = document.getElementById('review');"
        " return r && r.dataset.ready && r.dataset.step === 'blind'; }"
    )
    referenced = page.evaluate(
        "() => [...document.querySelectorAll('link[rel=stylesheet], script[src]')]"
        ".map(e => e.href || e.src)"
    )
    assert referenced, "the review page references no stylesheet or script"
    for url in referenced:
        status, kind = assets[url]
        assert status == 200, url
        expected = "text/css" if url.endswith(".css") else "javascript"
        assert expected in kind, (url, kind)
    image_filter = "() => getComputedStyle(document.querySelector('#review img.blurrable')).filter"
    assert "blur" in page.evaluate(image_filter)
    page.screenshot(path=str(artifacts / "production-review-blind.png"), full_page=True)
    page.keyboard.press("b")  # the reveal shortcut, from review.js
    assert page.is_checked("#review .unblur-toggle")
    # A function, not an expression: Playwright evals expressions, which the CSP forbids.
    page.wait_for_function(f"() => ({image_filter})() === 'none'", timeout=5000)  # after fade
    page.keyboard.press("?")
    page.wait_for_selector("dialog#shortcuts[open]")
    assert refused == []
    context.close()
