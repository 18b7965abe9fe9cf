"""The production shape: settings refuse unsafe defaults, the deploy check is clean, and every
docker-compose service runs a command that exists in this project."""

from __future__ import annotations

import importlib
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent
GOOD_KEY = "k" * 20 + "-production-secret-for-tests-only-0123456789"


def run_manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "SPAVL_PRODUCTION"}}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_it_refuses_to_start_in_production_without_a_secret_key():
    result = run_manage("check", env={"SPAVL_PRODUCTION": "1", "ALLOWED_HOSTS": "example.org"})
    assert result.returncode != 0
    assert "Set the SECRET_KEY environment variable" in result.stderr


def test_it_refuses_the_development_key_in_production():
    result = run_manage(
        "check",
        env={"SPAVL_PRODUCTION": "1", "SECRET_KEY": "django-insecure-" + "x" * 50},
    )
    assert result.returncode != 0
    assert "SECRET_KEY must be a random string" in result.stderr


@pytest.mark.parametrize(("prepare", "threshold"), [(None, "2147483647"), ("0", "None")])
def test_postgresql_connections_prepare_only_when_asked_and_keep_the_url_options(
    prepare, threshold
):
    env = {"DATABASE_URL": "postgres://u@db.invalid:5432/spavl?sslmode=require"}
    if prepare is not None:
        env["SPAVL_DB_PREPARE"] = prepare
    result = run_manage(
        "shell",
        "-c",
        "from django.conf import settings; o = settings.DATABASES['default']['OPTIONS'];"
        " print(o['prepare_threshold'], o['sslmode'])",
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1].split() == [threshold, "require"]


def test_the_deploy_check_prints_no_warnings_with_production_settings():
    result = run_manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        env={
            "SPAVL_PRODUCTION": "1",
            "SECRET_KEY": GOOD_KEY,
            "ALLOWED_HOSTS": "example.org",
            "SPAVL_TRUSTED_PROXIES": "172.17.0.1",
        },
    )
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout


def test_the_deploy_check_warns_when_no_proxy_may_say_https():
    result = run_manage(
        "check",
        "--deploy",
        env={"SPAVL_PRODUCTION": "1", "SECRET_KEY": GOOD_KEY, "ALLOWED_HOSTS": "example.org"},
    )
    assert "spavl.W002" in result.stdout + result.stderr


def test_debug_is_refused_in_production():
    result = run_manage(
        "check",
        env={
            "SPAVL_PRODUCTION": "1",
            "DEBUG": "1",
            "SECRET_KEY": GOOD_KEY,
            "ALLOWED_HOSTS": "example.org",
        },
    )
    assert result.returncode != 0 and "DEBUG=1 with SPAVL_PRODUCTION=1" in result.stderr


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _command(service: dict) -> list[str]:
    command = service["command"]
    return shlex.split(command) if isinstance(command, str) else list(command)


def test_every_compose_service_has_a_health_check():
    services = _compose()["services"]
    assert set(services) == {
        "web",
        "worker",
        "beat",
        "judge-worker",
        "generate-worker",
        "postgres",
        "redis",
    }
    assert all("healthcheck" in service for service in services.values())


def test_the_web_service_runs_gunicorn_on_a_real_wsgi_application():
    words = _command(_compose()["services"]["web"])
    target = next(word for word in " ".join(words).split() if word.endswith(":application"))
    module, attribute = target.split(":")
    assert callable(getattr(importlib.import_module(module), attribute))


@pytest.mark.parametrize("name", ["worker", "judge-worker", "generate-worker"])
def test_each_worker_runs_the_project_celery_app_on_queues_that_receive_tasks(name):
    words = _command(_compose()["services"][name])
    assert words[:4] == ["celery", "-A", "spavl_web", "worker"]
    app = importlib.import_module(words[2]).celery_app
    queues = set(words[words.index("-Q") + 1].split(","))
    routed = {route["queue"] for route in settings.CELERY_TASK_ROUTES.values()}
    assert queues & (routed | {settings.CELERY_TASK_DEFAULT_QUEUE})
    assert app.main == "spavl_web"


def test_beat_schedules_the_recovery_sweep_on_a_queue_a_worker_listens_to():
    services = _compose()["services"]
    assert _command(services["beat"])[:4] == ["celery", "-A", "spavl_web", "beat"]
    [entry] = settings.CELERY_BEAT_SCHEDULE.values()
    importlib.import_module("annotation.tasks")
    from spavl_web.celery import app

    assert entry["task"] in app.tasks
    worker_queues = _command(services["worker"])[_command(services["worker"]).index("-Q") + 1]
    assert settings.CELERY_TASK_DEFAULT_QUEUE in worker_queues.split(",")


@pytest.mark.parametrize(
    ("name", "queue"), [("judge-worker", "judge"), ("generate-worker", "generate")]
)
def test_only_the_gpu_workers_reserve_a_gpu_each_on_its_own_queue(name, queue):
    services = _compose()["services"]
    worker = services[name]
    assert worker["deploy"]["resources"]["reservations"]["devices"][0]["driver"] == "nvidia"
    assert _command(worker)[_command(worker).index("-Q") + 1].split(",") == [queue]
    assert _command(worker)[_command(worker).index("-c") + 1] == "1"  # one process per GPU
    assert worker["build"]["args"]["EXTRAS"] == "judge"  # torch and transformers
    assert "deploy" not in services["worker"]


def test_the_image_build_copies_every_top_level_package():
    dockerfile = (ROOT / "Dockerfile").read_text()
    for package in ["spavl_web", "annotation", "judging", "templates", "static", "manage.py"]:
        assert f"COPY {package} " in dockerfile
