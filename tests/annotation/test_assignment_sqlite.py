"""The claim rules on the embedded SQLite database, whose claims take the ORM path.

claim_next_pair picks its path by ``connection.vendor``; the behavioural tests in
test_assignment.py run here on PostgreSQL (one SQL statement) and, through this test, again in
a subprocess on SQLite (the ORM path).
"""

import os
import subprocess
import sys
from pathlib import Path

from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


def test_it_passes_the_claim_tests_on_sqlite(tmp_path: Path) -> None:
    if connection.vendor == "sqlite":
        return  # already the SQLite run
    drop = ("DATABASE_URL", "REDIS_URL", "SPAVL_TEST_DB_NAME")
    env = {k: v for k, v in os.environ.items() if k not in drop} | {"SPAVL_VAR_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
        + ["tests/annotation/test_assignment.py"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-4000:]
    assert " passed" in done.stdout and " failed" not in done.stdout
