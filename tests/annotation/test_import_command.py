"""The import_data command: summary, rejected rows, report file, one clear failure message."""

from __future__ import annotations

import csv
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from annotation.models import ImportBatch, ImportStatus, Question
from tests.factories import write_image_file, write_jsonl

pytestmark = pytest.mark.usefixtures("spavl_taxonomy")

BASE = {
    "question": " Q: what is it?",
    "class1": "Malicious Use",
    "class2": "Security threats",
    "class3": "cyber",
    "model": "m",
}


def run_import(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("import_data", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_it_prints_a_summary_and_writes_every_rejection_to_the_report(
    tmp_path: Path, settings: Any
) -> None:
    settings.IMPORT_REPORT_DIR = tmp_path / "var" / "import-reports"
    write_image_file(root=tmp_path, relative="a.jpg")
    rows = [{**BASE, "image": "a.jpg", "response": "one"}, {**BASE, "image": "../x.jpg"}]
    path = write_jsonl(path=tmp_path / "r.jsonl", rows=rows)

    out, err = run_import("--format", "responses-jsonl", str(path))

    batch = ImportBatch.objects.get()
    assert "2 rows read, 1 created, 0 already present, 1 rejected" in out
    assert "rejected row 2: image path '../x.jpg' leaves the image root" in out
    assert "rows" in err  # the progress bar goes to stderr
    report = Path(batch.report_path)
    assert report.parent == tmp_path / "var" / "import-reports"
    assert f"report: {report}" in out
    with report.open(encoding="utf-8") as handle:
        assert list(csv.reader(handle)) == [
            ["row", "reason"],
            ["2", "image path '../x.jpg' leaves the image root"],
        ]
    assert batch.sha256 and batch.finished_at and batch.status == ImportStatus.FINISHED


def test_it_writes_the_report_where_asked_and_counts_a_second_run_as_present(
    tmp_path: Path,
) -> None:
    write_image_file(root=tmp_path / "img", relative="a.jpg")
    path = write_jsonl(
        path=tmp_path / "r.jsonl", rows=[{**BASE, "image": "a.jpg", "response": "1"}]
    )
    args = ["--format", "responses-jsonl", "--image-root", str(tmp_path / "img"), str(path)]

    run_import(*args, "--report", str(tmp_path / "first.csv"))
    out, _ = run_import(*args, "--no-progress")

    assert "1 rows read, 0 created, 1 already present, 0 rejected" in out
    assert (tmp_path / "first.csv").read_text(encoding="utf-8").strip() == "row,reason"


def test_it_fails_with_one_clear_message_when_the_file_is_missing(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="nothing imported: .*missing.json does not exist"):
        run_import("--format", "rlhf-json", str(tmp_path / "missing.json"))

    assert ImportBatch.objects.get().status == ImportStatus.FAILED
    assert not Question.objects.exists()
