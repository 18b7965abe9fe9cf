"""The export read back by the real clients: `datasets` for parquet, json/tarfile for the tars."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from datasets import Features, Image, Value, load_dataset
from django.core.management import call_command

from annotation.models import ExportJob, ExportStatus, Pair
from tests.factories import image_bytes, make_image, make_labelled_pair

THIRDS = {"ratios": {"train": 1, "validation": 1, "test": 1}}
SUBCATEGORIES = ["bully", "harass", "ageism"]


def _definition(tmp_path: Path, **values: Any) -> str:
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "definition.json"
    path.write_text(json.dumps({"name": "test export", **THIRDS, **values}))
    return str(path)


def _nine_pairs() -> list[Pair]:
    """Three subcategories with three images each; text with leading whitespace and quotes."""
    pairs = []
    for index in range(9):
        pairs.append(
            make_labelled_pair(
                image=make_image(seed=1000 + index * 7919, fmt="PNG" if index == 4 else "JPEG"),
                question_text=f"  \n Q: what is shown in «{index}»?",
                chosen=f" \t I cannot help with that {index}.\n",
                rejected=f'"Sure", here is how {index}',
                final_chosen="b" if index % 2 else "a",
                final_label="flipped" if index % 2 else "imported",
                subcategory_key=SUBCATEGORIES[index % 3],
            )
        )
    return pairs


def _export(tmp_path: Path, export_format: str, **values: Any) -> Path:
    out = tmp_path / export_format
    call_command(
        "export_dataset",
        definition=_definition(tmp_path, **values),
        format=export_format,
        out=str(out),
        verbosity=0,
    )
    return out


def _expected(pair: Pair) -> dict[str, Any]:
    pair.refresh_from_db()
    chosen, rejected = (
        (pair.response_b, pair.response_a)
        if pair.final_chosen == "b"
        else (pair.response_a, pair.response_b)
    )
    return {
        "question": pair.question.text,
        "chosen": chosen.text,
        "rejected": rejected.text,
        "bytes": bytes(pair.question.image.data),
        "class3": pair.question.subcategory.key if pair.question.subcategory else "",
    }


@pytest.mark.django_db
def test_it_exports_parquet_that_datasets_reads_with_spavl_features_and_original_bytes(
    spavl_taxonomy: None, tmp_path: Path
) -> None:
    pairs = _nine_pairs()
    out = _export(tmp_path, "spavl-parquet")

    # Like SPA-VL's, each split has its own columns, so each loads as its own configuration.
    dataset = {
        split: load_dataset(
            "parquet",
            data_files=sorted(str(p) for p in out.glob(f"data/{split}-*.parquet")),
            split="train",
            cache_dir=str(tmp_path / "hf"),
        )
        for split in ("train", "validation", "test")
    }
    string = Value("string")
    assert dataset["train"].features == Features(
        {
            "image": Image(),
            "question": string,
            "chosen": string,
            "rejected": string,
            "image_name": string,
        }
    )
    assert dataset["validation"].features == Features(
        {
            "image": Image(),
            "question": string,
            "chosen": string,
            "rejected": string,
            "class1": string,
            "class2": string,
            "class3": string,
        }
    )
    assert dataset["test"].features == Features(
        {"image": Image(), "question": string, "class1": string, "class2": string, "class3": string}
    )
    expected = {e["question"]: e for e in map(_expected, pairs)}
    seen = 0
    for split in ("train", "validation", "test"):
        raw = dataset[split].cast_column("image", Image(decode=False))
        for row in raw:
            want = expected[row["question"]]
            assert row["image"]["bytes"] == want["bytes"]
            if split != "test":
                assert (row["chosen"], row["rejected"]) == (want["chosen"], want["rejected"])
            if split != "train":
                assert row["class3"] == want["class3"]
            seen += 1
    assert seen == 9
    assert dataset["train"][0]["image"].size == (64, 48)  # decodes as a picture


@pytest.mark.django_db
def test_it_writes_row_groups_of_100_and_leaves_image_bytes_uncompressed(
    spavl_taxonomy: None, tmp_path: Path
) -> None:
    image = make_image(seed=77)
    for index in range(230):
        make_labelled_pair(image=image, question_text=f"q{index}")
    out = _export(tmp_path, "spavl-parquet", ratios={"train": 1, "validation": 0, "test": 0})

    metadata = pq.ParquetFile(out / "data/train-00000-of-00001.parquet").metadata
    assert [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)] == [
        100,
        100,
        30,
    ]
    columns = {
        metadata.row_group(0).column(i).path_in_schema: metadata.row_group(0).column(i)
        for i in range(metadata.row_group(0).num_columns)
    }
    assert columns["image.bytes"].compression == "UNCOMPRESSED"
    assert columns["question"].compression == "ZSTD"


@pytest.mark.django_db
def test_it_cuts_parquet_shards_by_size_with_hugging_face_names(
    spavl_taxonomy: None, tmp_path: Path, settings: Any
) -> None:
    settings.EXPORT_SHARD_BYTES = 3 * (4096 + len(image_bytes(seed=5)))
    for index in range(7):
        make_labelled_pair(image=make_image(seed=5 + index * 101))
    out = _export(tmp_path, "spavl-parquet", ratios={"train": 1, "validation": 0, "test": 0})

    names = sorted(p.name for p in (out / "data").iterdir())
    assert names[0] == "train-00000-of-00003.parquet"
    assert len(names) == 3
    assert sum(pq.ParquetFile(out / "data" / name).metadata.num_rows for name in names) == 7


@pytest.mark.django_db
def test_it_adds_provenance_columns_only_when_asked(spavl_taxonomy: None, tmp_path: Path) -> None:
    make_labelled_pair(final_label="flipped", final_chosen="b")
    ratios = {"train": 1, "validation": 0, "test": 0}
    plain = _export(tmp_path, "spavl-parquet", ratios=ratios)
    with_provenance = _export(
        tmp_path / "p", "spavl-parquet", ratios=ratios, include_provenance=True
    )

    def columns(out: Path) -> list[str]:
        return pq.read_schema(out / "data/train-00000-of-00001.parquet").names

    assert columns(plain) == ["image", "question", "chosen", "rejected", "image_name"]
    table = pq.read_table(with_provenance / "data/train-00000-of-00001.parquet")
    assert table.column("final_label").to_pylist() == ["flipped"]
    assert table.column("chosen_model").to_pylist() == ["model-b"]


@pytest.mark.django_db
def test_it_exports_rlhf_json_whose_image_paths_resolve_under_the_image_root(
    spavl_taxonomy: None, tmp_path: Path
) -> None:
    pairs = _nine_pairs()
    out = _export(tmp_path, "rlhf-json")

    expected = {e["question"]: e for e in map(_expected, pairs)}
    seen = 0
    for split in ("train", "validation", "test"):
        extracted = tmp_path / "x" / split
        with tarfile.open(out / f"{split}-json.tar") as tar:
            tar.extractall(extracted, filter="data")
        # These pairs have no question type: one list each, under SPA-VL-RLHF's config.
        config = json.loads((extracted / f"config_{split}.json").read_text(encoding="utf-8"))
        assert config == {"unknown": f"unknown_{split}.json"}
        records = json.loads((extracted / config["unknown"]).read_text(encoding="utf-8"))
        assert isinstance(records, list)
        for record in records:
            assert set(record) == {"id", "image", "question", "chosen", "rejected"}
            want = expected[record["question"]]
            assert (record["chosen"], record["rejected"]) == (want["chosen"], want["rejected"])
            image_path = extracted / "images" / record["image"]
            assert image_path.read_bytes() == want["bytes"]
            assert record["image"].split("/")[2] == want["class3"]
            seen += 1
    assert seen == 9
    assert (
        any(name.endswith(".png") for name in _tar_names(out / "validation-json.tar"))
        or any(name.endswith(".png") for name in _tar_names(out / "train-json.tar"))
        or any(name.endswith(".png") for name in _tar_names(out / "test-json.tar"))
    )


def _tar_names(path: Path) -> list[str]:
    with tarfile.open(path) as tar:
        return tar.getnames()


@pytest.mark.django_db
def test_it_exports_dpo_jsonl_with_images_next_to_it(spavl_taxonomy: None, tmp_path: Path) -> None:
    pair = make_labelled_pair(final_label="confirmed", final_chosen="b", chosen=" A", rejected="B")
    out = _export(tmp_path, "dpo-jsonl", ratios={"train": 1, "validation": 0, "test": 0})

    with tarfile.open(out / "train-jsonl.tar") as tar:
        tar.extractall(tmp_path / "x", filter="data")
    lines = (tmp_path / "x" / "train.jsonl").read_text(encoding="utf-8").splitlines()
    record = json.loads(lines[0])
    assert len(lines) == 1
    assert (record["prompt"], record["chosen"], record["rejected"]) == (
        pair.question.text,
        "B",
        " A",
    )
    assert (tmp_path / "x" / record["images"][0]).read_bytes() == bytes(pair.question.image.data)


@pytest.mark.django_db
def test_it_writes_a_card_and_a_manifest_with_the_sha256_of_every_file(
    spavl_taxonomy: None, tmp_path: Path
) -> None:
    _nine_pairs()
    out = _export(tmp_path, "spavl-parquet", split_seed=11)

    import hashlib

    manifest = json.loads((out / "manifest.json").read_text())
    names = {entry["name"] for entry in manifest["files"]}
    on_disk = {
        str(p.relative_to(out))
        for p in out.rglob("*")
        if p.is_file() and not p.name.startswith(".") and p.name != "manifest.json"
    }
    assert names == on_disk
    for entry in manifest["files"]:
        assert hashlib.sha256((out / entry["name"]).read_bytes()).hexdigest() == entry["sha256"]
    card = (out / "README.md").read_text()
    assert "Seed 11" in card
    assert "| Representation & ToxicityHarms / Toxic |" in card
    job = ExportJob.objects.get()
    assert job.status == ExportStatus.FINISHED
    assert {f["name"] for f in job.files} == names | {"manifest.json"}


def test_the_card_carries_the_agreement_figures_of_the_exported_pairs(
    spavl_taxonomy: None, tmp_path: Path, reviewer: Any
) -> None:
    from tests.factories import make_agreement_campaign, make_agreement_review, make_judgement

    pairs = _nine_pairs()
    campaign = make_agreement_campaign()
    for pair in pairs:
        make_judgement(pair=pair, p_a_better=0.9)
        make_agreement_review(campaign=campaign, pair=pair, reviewer=reviewer, blind="a")
    out = _export(tmp_path, "spavl-parquet", split_seed=11)
    card = (out / "README.md").read_text()
    agreement = json.loads(card.split("## Agreement")[1].split("```json")[1].split("```")[0])
    assert agreement["counts"]["with_human_verdict"] == 9
    again = _export(tmp_path / "again", "spavl-parquet", split_seed=11)
    assert (again / "README.md").read_text() == card


def test_the_card_says_when_no_exported_pair_has_a_human_verdict(
    spavl_taxonomy: None, tmp_path: Path
) -> None:
    _nine_pairs()
    card = (_export(tmp_path, "spavl-parquet") / "README.md").read_text()
    assert "Not available for this export." in card
