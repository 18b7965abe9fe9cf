"""The README's worked API pipeline, run as written against the production services.

The blocks marked ``<!-- pipeline: ... -->`` in README.md are taken out of it and run unchanged:
the ``curl`` ones with bash, the Python ones with ``requests``, against the compose services
started as processes (gunicorn, the Celery workers, beat; see test_production_shape). Between
the two halves a reviewer reviews every pair of the new campaign, as the browser would. The only
glue is what stands in for the deployment: the TLS proxy's ``X-Forwarded-Proto`` header (a
curlrc, a default header for requests sessions), and carrying the shell's variables from the
first half to the second. If the README drifts from the API, this fails.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import requests
from django.contrib.auth.models import User

from annotation.models import Campaign, ExportDefinition, Pair
from annotation.services.assignment import claim_next_pair
from annotation.services.review import give_blind_verdict, submit_review
from spavl_web.tokens import create_token
from tests.browser.test_production_shape import stack  # noqa: F401  (the fixture)
from tests.factories import image_bytes
from tests.workers import REPO, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

BLOCK = re.compile(r"<!-- pipeline: (\w+) (\d) -->\n```(?:sh|python)\n(.*?)```", re.DOTALL)


def readme_blocks() -> dict[tuple[str, int], str]:
    blocks = {
        (kind, int(part)): code
        for kind, part, code in BLOCK.findall((REPO / "README.md").read_text())
    }
    assert set(blocks) == {("curl", 1), ("curl", 2), ("python", 1), ("python", 2)}, blocks.keys()
    return blocks


def write_pairs(folder: Path, *, seed: int, count: int = 3) -> None:
    """A preference file as the README's map reads it: JSON lines, base64 images."""
    folder.mkdir()
    rows = [
        {
            "id": f"row-{seed}-{n}",
            "image": base64.b64encode(image_bytes(seed=seed + n)).decode(),
            "question": f"What does picture {seed + n} show?",
            "chosen": "I can describe it without helping anyone get hurt.",
            "rejected": f"Here is how to do the harmful thing {seed + n}.",
        }
        for n in range(count)
    ]
    (folder / "pairs.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))


def review_everything(campaign: Campaign, reviewer: User) -> int:
    """What rita does in the browser: a blind verdict, then the submit, pair after pair."""
    done = 0
    while (lease := claim_next_pair(campaign=campaign, reviewer=reviewer)) is not None:
        screen = lease.to_screen_side("a")
        give_blind_verdict(assignment=lease, verdict=screen)
        submit_review(assignment=lease, verdict=screen)
        done += 1
    return done


def assert_export_matches_its_manifest(folder: Path) -> None:
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["files"]
    for entry in manifest["files"]:
        body = (folder / entry["name"]).read_bytes()
        assert (len(body), hashlib.sha256(body).hexdigest()) == (entry["size"], entry["sha256"])


@pytest.fixture
def pipeline_world(stack: Any) -> dict[str, Any]:  # noqa: F811
    def web_healthy() -> bool:
        return stack.healthy("web")

    wait_for(web_healthy, timeout=120)
    ops = User.objects.create_superuser("ops")
    rita = User.objects.create_user("rita")
    _, secret = create_token(
        user=ops, name="pipeline", scopes=["read", "import", "judge", "admin", "export"]
    )
    ExportDefinition.objects.create(name="everything", created_by=ops)
    return {"stack": stack, "secret": secret, "rita": rita}


def test_the_readme_pipeline_runs_as_written(
    pipeline_world: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocks = readme_blocks()
    services, rita = pipeline_world["stack"], pipeline_world["rita"]

    # curl, with bash: the TLS proxy's header comes from a curlrc, as a deployment's would.
    work = tmp_path / "curl"
    write_pairs(work, seed=300)
    (work / ".curlrc").write_text('header = "X-Forwarded-Proto: https"\n')
    env = {
        **os.environ,
        "SPAVL": services.base,
        "TOKEN": pipeline_world["secret"],
        "CURL_HOME": str(work),
    }

    def bash(script: str) -> str:
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        return done.stdout

    keep = "\ndeclare -p batch run campaign > state.sh; declare -f api wait_for >> state.sh\n"
    first = bash(blocks[("curl", 1)] + keep)
    assert "/imports/" in first and ": finished" in first, first
    campaign = Campaign.objects.get()
    assert Pair.objects.filter(source_id__startswith="row-300-").count() == 3
    assert review_everything(campaign, rita) == 3
    second = bash("source state.sh\n" + blocks[("curl", 2)])
    assert len(re.findall(r'^\[\d+,"a"\]$', second, re.MULTILINE)) == 3, second
    assert_export_matches_its_manifest(work / "export")

    # Python requests, in this process: sessions carry the proxy's header by default.
    work = tmp_path / "python"
    write_pairs(work, seed=400)
    defaults = requests.sessions.default_headers

    def behind_tls() -> Any:
        headers = defaults()
        headers["X-Forwarded-Proto"] = "https"
        return headers

    monkeypatch.setattr(requests.sessions, "default_headers", behind_tls)
    monkeypatch.setenv("SPAVL", services.base)
    monkeypatch.setenv("TOKEN", pipeline_world["secret"])
    monkeypatch.chdir(work)
    namespace: dict[str, Any] = {}
    exec(compile(blocks[("python", 1)], "README python 1", "exec"), namespace)
    second_campaign = Campaign.objects.get(pk=namespace["campaign"]["id"])
    reviewed = review_everything(second_campaign, rita)
    assert reviewed >= 3
    exec(compile(blocks[("python", 2)], "README python 2", "exec"), namespace)
    assert len(namespace["reviews"]) == reviewed
    assert namespace["job"]["status"] == "finished"
    assert_export_matches_its_manifest(work / "export")
