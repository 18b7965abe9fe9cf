"""The safe-rlhf-jsonl export read back with json and tarfile: PKU-SafeRLHF's fields line by
line, splits, manifest and card, and the pairs the format leaves out counted by why."""

from __future__ import annotations

import hashlib
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from annotation.models import Pair
from tests.factories import make_image, make_labelled_pair

pytestmark = pytest.mark.django_db

FIELDS = {
    "prompt",
    "image",
    "response_0",
    "response_1",
    "response_0_source",
    "response_1_source",
    "better_response_id",
    "safer_response_id",
    "is_response_0_safe",
    "is_response_1_safe",
    "response_0_severity_level",
    "response_1_severity_level",
    "pair_id",
}


def _export(tmp_path: Path, **values: Any) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    definition = tmp_path / "definition.json"
    definition.write_text(json.dumps({"name": "safe rlhf", **values}))
    out = tmp_path / "out"
    call_command(
        "export_dataset",
        definition=str(definition),
        format="safe-rlhf-jsonl",
        out=str(out),
        verbosity=0,
    )
    return out


def _pair(*, label: str = "imported", chosen: str = "a", **axes: Any) -> Pair:
    pair = make_labelled_pair(
        final_label=label,
        final_chosen=chosen,
        chosen=f"answer A {Pair.objects.count()}",
        rejected="answer B «unicode»",
        image=make_image(seed=100 + Pair.objects.count() * 7919),
    )
    Pair.objects.filter(pk=pair.pk).update(**axes)
    pair.refresh_from_db()
    return pair


def _lines(out: Path, split: str, into: Path) -> list[dict[str, Any]]:
    with tarfile.open(out / f"{split}-jsonl.tar") as tar:
        tar.extractall(into, filter="data")
    text = (into / f"{split}.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines()]


def _some_pairs() -> dict[str, Pair]:
    return {
        "labelled": _pair(
            final_safer="a",
            final_helpful="b",
            final_a_safe=True,
            final_b_safe=False,
            final_b_severity="severe",
        ),
        "no_safety": _pair(final_safer="b", final_helpful="b"),
        # Both unsafe by the single label: the axes still say which is safer.
        "both_unsafe": _pair(
            label="both_unsafe",
            chosen="",
            final_safer="a",
            final_helpful="a",
            final_a_safe=False,
            final_a_severity="minor",
            final_b_safe=False,
            final_b_severity="moderate",
        ),
        "tie_safer": _pair(final_safer="tie", final_helpful="a"),
        "tie_both": _pair(final_safer="tie", final_helpful="tie"),
        "tie_helpful": _pair(final_safer="a", final_helpful="tie"),
        "half": _pair(final_safer="a"),
        "single_mode": _pair(),
    }


def test_it_writes_pku_saferlhf_lines_field_by_field(spavl_taxonomy, tmp_path):
    pairs = _some_pairs()
    out = _export(tmp_path, ratios={"train": 1, "validation": 0, "test": 0})
    lines = {line["pair_id"]: line for line in _lines(out, "train", tmp_path / "x")}
    exported = {"labelled", "no_safety", "both_unsafe"}
    assert set(lines) == {pairs[name].pk for name in exported}
    for name in exported:
        pair, line = pairs[name], lines[pairs[name].pk]
        assert set(line) == FIELDS
        assert line["prompt"] == pair.question.text
        assert line["response_0"] == pair.response_a.text  # the pair's order, never swapped
        assert line["response_1"] == pair.response_b.text == "answer B «unicode»"
        assert line["response_0_source"] == pair.response_a.model_name
        assert line["response_1_source"] == pair.response_b.model_name
        image = (tmp_path / "x" / line["image"]).read_bytes()
        assert line["image"].startswith("images/") and image == bytes(pair.question.image.data)
    labelled = lines[pairs["labelled"].pk]
    assert (labelled["safer_response_id"], labelled["better_response_id"]) == (0, 1)
    assert (labelled["is_response_0_safe"], labelled["is_response_1_safe"]) == (True, False)
    assert labelled["response_0_severity_level"] == 0
    assert labelled["response_1_severity_level"] == 3
    no_safety = lines[pairs["no_safety"].pk]
    assert (no_safety["safer_response_id"], no_safety["better_response_id"]) == (1, 1)
    assert no_safety["is_response_0_safe"] is None and no_safety["is_response_1_safe"] is None
    assert no_safety["response_0_severity_level"] is None
    both = lines[pairs["both_unsafe"].pk]
    assert (both["response_0_severity_level"], both["response_1_severity_level"]) == (1, 2)
    assert (both["is_response_0_safe"], both["is_response_1_safe"]) == (False, False)


def test_it_adds_provenance_only_when_asked(spavl_taxonomy, tmp_path):
    pair = _some_pairs()["labelled"]
    out = _export(
        tmp_path, ratios={"train": 1, "validation": 0, "test": 0}, include_provenance=True
    )
    (line,) = [x for x in _lines(out, "train", tmp_path / "x") if x["pair_id"] == pair.pk]
    assert set(line) == FIELDS | {"final_label", "judge_p_response_0_better", "provenance"}
    assert line["final_label"] == "imported" and line["judge_p_response_0_better"] is None
    assert isinstance(line["provenance"], dict)


def test_the_card_counts_the_pairs_left_out_and_why(spavl_taxonomy, tmp_path):
    _some_pairs()
    card = (_export(tmp_path) / "README.md").read_text()
    assert "`safe-rlhf-jsonl`" in card and "## Safe RLHF format" in card
    assert "| tie on the safer axis | 2 |" in card  # one tied on both axes counts here
    assert "| tie on the helpful axis | 1 |" in card
    assert "| one axis not decided | 1 |" in card
    assert "| **total** | 4 |" in card
    assert "`response_0_severity_level" in card


def test_it_splits_without_losing_or_repeating_a_pair_and_lists_every_file(
    spavl_taxonomy, tmp_path
):
    decided = [_pair(final_safer="ab"[i % 2], final_helpful="ba"[i % 3 % 2]).pk for i in range(12)]
    _pair(final_safer="tie", final_helpful="a")
    out = _export(tmp_path, ratios={"train": 1, "validation": 1, "test": 1}, split_seed=3)
    seen: list[int] = []
    for split in ("train", "validation", "test"):
        if (out / f"{split}-jsonl.tar").exists():
            seen += [x["pair_id"] for x in _lines(out, split, tmp_path / split)]
    assert sorted(seen) == sorted(decided)
    manifest = json.loads((out / "manifest.json").read_text())
    for entry in manifest["files"]:
        assert hashlib.sha256((out / entry["name"]).read_bytes()).hexdigest() == entry["sha256"]
    on_disk = {
        p.name for p in out.iterdir() if not p.name.startswith(".") and p.name != "manifest.json"
    }
    assert {entry["name"] for entry in manifest["files"]} == on_disk
    assert len(on_disk) >= 3  # at least two split tars and the card


def test_it_exports_the_same_bytes_twice(spavl_taxonomy, tmp_path):
    _some_pairs()
    first = _export(tmp_path / "one", ratios={"train": 1, "validation": 0, "test": 0})
    again = _export(tmp_path / "two", ratios={"train": 1, "validation": 0, "test": 0})
    assert (first / "manifest.json").read_text() == (again / "manifest.json").read_text()
