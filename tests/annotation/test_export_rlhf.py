"""The rlhf-json export read as SPA-VL-RLHF reads it, unpacked and run as its card says.

SPA-VL-RLHF (github.com/EchoseChen/SPA-VL-RLHF, all_utils/data_utils/) loads its data with
``load_data(keywords, config_path)``: ``json.load`` of the config (keyword -> JSON path, opened
from the working directory in the locale's encoding), then for each keyword asked for, in the
order asked, ``json.load`` of that file, the lists concatenated; a keyword the config lacks is
skipped. Its DPO and PPO datasets make ``torch.tensor(record["id"], dtype=torch.long)`` and
every dataset opens ``os.path.join(image_folder, record["image"])`` with PIL. The readers below
do the same, written for these tests.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from PIL import Image as PILImage

from annotation.models import Pair, QuestionType
from annotation.services.imports import import_file
from tests.factories import (
    image_bytes,
    make_image,
    make_labelled_pair,
    make_question,
    write_image_file,
    write_json,
)

pytestmark = pytest.mark.usefixtures("spavl_taxonomy")

KEYWORD = {"easy": "easy", "hardq": "hardq", "hards": "hardd", "unknown": "unknown"}
TYPES = ["easy", "hardq", "hards", "unknown"]
SUBCATEGORIES = ["bully", "harass", "ageism"]
THIRDS = {"train": 1, "validation": 1, "test": 1}
LONG = 2**63


def export_rlhf(tmp_path: Path, **values: Any) -> Path:
    definition = tmp_path / "definition.json"
    definition.write_text(json.dumps({"name": "rlhf", "ratios": THIRDS, **values}))
    out = tmp_path / "export"
    call_command(
        "export_dataset", definition=str(definition), format="rlhf-json", out=str(out), verbosity=0
    )
    return out


def card_blocks(out: Path) -> list[str]:
    card = (out / "README.md").read_text(encoding="utf-8")
    section = card.split("## Training with SPA-VL-RLHF")[1].split("\n## ")[0]
    return [block.split("\n", 1)[1] for block in section.split("```sh")[1:]]


def unpack_as_the_card_says(out: Path) -> None:
    """Run the card's own unpack command in the export folder, with the system's tar."""
    subprocess.run(["bash", "-c", card_blocks(out)[0].split("```")[0]], cwd=out, check=True)


def card_arguments(out: Path, program: str) -> dict[str, list[str]]:
    """The arguments of the card's command that runs ``program``: flag -> its values."""
    block = next(b for b in card_blocks(out) if f"/{program}" in b.split("```")[0])
    words = shlex.split(block.split("```")[0].replace("\\\n", " "))
    arguments: dict[str, list[str]] = {}
    for word in words[words.index(next(w for w in words if w.endswith(program))) + 1 :]:
        if word.startswith("--"):
            current = arguments.setdefault(word[2:], [])
        else:
            current.append(word)
    return arguments


def card_folder(out: Path) -> Path:
    """The folder the card's setup block changes to, relative to the export folder."""
    setup = card_blocks(out)[1]
    return out / setup.split("\n")[0].removeprefix("cd ")


def read_as_spa_vl_rlhf(keywords: list[str], config_path: str) -> list[dict[str, Any]]:
    with open(config_path) as handle:  # the locale's encoding, as load_data
        config = json.load(handle)
    records: list[dict[str, Any]] = []
    for keyword in keywords:
        if keyword in config:
            with open(config[keyword]) as handle:
                records.extend(json.load(handle))
    return records


def open_image(image_folder: str, record: dict[str, Any]) -> bytes:
    path = os.path.join(image_folder, record["image"])
    PILImage.open(path).convert("RGB")
    return Path(path).read_bytes()


def expected(pair: Pair) -> dict[str, Any]:
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
        "image": bytes(pair.question.image.data),
        "keyword": KEYWORD[pair.question.question_type],
    }


def twelve_pairs() -> list[Pair]:
    """Every question type in every subcategory; text SPA-VL-RLHF must read back exactly."""
    pairs = []
    for index in range(12):
        question = make_question(
            text=f'  \n Q{index}: «{TYPES[index % 4]}» 你好 \U0001f600 "quoted" \\ back?',
            image=make_image(seed=500 + index * 7919, fmt="PNG" if index == 5 else "JPEG"),
            subcategory_key=SUBCATEGORIES[index % 3],
            question_type=TYPES[index % 4],
        )
        pairs.append(
            make_labelled_pair(
                question=question,
                chosen=f" \t I cannot help {index} — désolé.\n",
                rejected=f"Sure {index}: \u2028 step one",
                final_chosen="b" if index % 2 else "a",
                final_label="flipped" if index % 2 else "imported",
            )
        )
    return pairs


def test_spa_vl_rlhf_reads_every_record_byte_exact_from_the_export_unpacked_as_the_card_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    want = {e["question"]: e for e in map(expected, twelve_pairs())}
    out = export_rlhf(tmp_path)
    unpack_as_the_card_says(out)
    dpo = card_arguments(out, "train_dpo.py")
    reward = card_arguments(out, "train_rm.py")
    monkeypatch.chdir(card_folder(out))

    assert dpo["keywords"] == list(json.loads(Path("config_train.json").read_text()))
    # The reward model reads train and test: their question types, in SPA-VL-RLHF's order.
    # (Which types land in which split follows the seeded split of the image groups.)
    configs = {
        split: set(json.loads(Path(f"config_{split}.json").read_text()))
        for split in ("train", "validation", "test")
    }
    assert set().union(*configs.values()) == {"easy", "hardq", "hardd", "unknown"}
    read_by_reward = configs["train"] | configs["test"]
    assert reward["keywords"] == [
        keyword for keyword in ("easy", "hardq", "hardd", "unknown") if keyword in read_by_reward
    ]
    assert dpo["image_folder"] == reward["image_folder"] == ["images"]
    assert reward["config_test_path"] == ["config_test.json"]
    seen: list[int] = []
    for split in ("train", "validation", "test"):
        config = json.loads(Path(f"config_{split}.json").read_text(encoding="ascii"))
        assert list(config.items()) == [
            (k, f"{k}_{split}.json") for k in reward["keywords"] if k in config
        ]
        for keyword in config:
            records = read_as_spa_vl_rlhf([keyword], f"config_{split}.json")
            assert Path(config[keyword]).read_bytes().isascii()  # any locale reads it the same
            for record in records:
                wanted = want[record["question"]]
                assert set(record) == {"id", "image", "question", "chosen", "rejected"}
                assert (record["chosen"], record["rejected"]) == (
                    wanted["chosen"],
                    wanted["rejected"],
                )
                assert wanted["keyword"] == keyword
                assert open_image(dpo["image_folder"][0], record) == wanted["image"]
                assert type(record["id"]) is int and -LONG <= record["id"] < LONG
                seen.append(record["id"])
        everything = read_as_spa_vl_rlhf(reward["keywords"], f"config_{split}.json")
        by_keyword = [r for k in config for r in json.loads(Path(config[k]).read_text())]
        assert everything == by_keyword  # one list per keyword, in keyword order
    assert len(seen) == len(set(seen)) == 12
    assert set(seen) == set(Pair.objects.values_list("pk", flat=True))  # no source ids here


def test_it_writes_absolute_paths_under_the_data_root_when_the_definition_names_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pair = make_labelled_pair(question=make_question(question_type="hards"))
    root = tmp_path / "data root"
    out = export_rlhf(
        tmp_path, ratios={"train": 1, "validation": 0, "test": 0}, rlhf_data_root=str(root)
    )
    unpack_as_the_card_says(out)
    dpo = card_arguments(out, "train_dpo.py")
    monkeypatch.chdir(tmp_path)

    assert dpo["config_train_path"] == [f"{root}/config_train.json"]
    assert dpo["image_folder"] == [f"{root}/images"]
    config = json.loads((root / "config_train.json").read_text())
    assert config == {"hardd": f"{root}/hardd_train.json"}
    [record] = read_as_spa_vl_rlhf(dpo["keywords"], dpo["config_train_path"][0])
    assert open_image(dpo["image_folder"][0], record) == bytes(pair.question.image.data)
    assert not (out / "spavl-rlhf").exists()


@pytest.mark.parametrize("root", ["relative/folder", "/two\nlines", 5])
def test_a_data_root_must_be_an_absolute_path_on_one_line(tmp_path: Path, root: Any) -> None:
    with pytest.raises(CommandError, match="rlhf_data_root must be empty or an absolute path"):
        export_rlhf(tmp_path, rlhf_data_root=root)


def test_records_keep_their_source_id_where_it_is_an_integer_no_other_record_carries(
    tmp_path: Path,
) -> None:
    pairs = [make_labelled_pair() for _ in range(8)]
    plain, clash, chained, kept, twin_a, twin_b, text, padded = pairs
    sources = {
        clash: str(plain.pk),  # the pair id plain falls back to
        chained: str(clash.pk),  # so clash falls back to its pair id, and so does this one
        kept: "9000000000000000000",
        twin_a: "5",
        twin_b: "5",
        text: "abc-1",
        padded: "0042",
    }
    for pair, source_id in sources.items():
        pair.source_id = source_id
        pair.save(update_fields=["source_id"])
    out = export_rlhf(tmp_path, ratios={"train": 1, "validation": 0, "test": 0})
    unpack_as_the_card_says(out)
    folder = card_folder(out)

    records = json.loads((folder / "unknown_train.json").read_text())
    ids = {record["question"]: record["id"] for record in records}
    assert {pair.pk: ids[pair.question.text] for pair in pairs} == {
        pair.pk: 9000000000000000000 if pair is kept else pair.pk for pair in pairs
    }


def test_an_rlhf_json_round_trip_keeps_question_types_and_ids(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "spa-vl-rlhf"
    hate = "Representation & ToxicityHarms/Toxic/hate"
    files: dict[str, list[dict[str, Any]]] = {}
    for number, keyword in enumerate(["easy", "hardq", "hardd"]):
        files[keyword] = []
        for index in range(2):
            image = write_image_file(
                root=source / "images",
                relative=f"{hate}/{number * 2 + index}.jpg",
                data=image_bytes(seed=900 + number * 2 + index),
            )
            files[keyword].append(
                {
                    "id": 233 + number * 10 + index,
                    "image": image,
                    "question": f" {keyword} question {index} «ü»?",
                    "chosen": f"No {index}.\n",
                    "rejected": f'"Yes" {index}',
                }
            )
        path = write_json(path=source / f"{keyword}_train.json", value=files[keyword])
        import_file(path=path, import_format="rlhf-json", image_root=source / "images")

    out = export_rlhf(tmp_path, ratios={"train": 1, "validation": 0, "test": 0})
    unpack_as_the_card_says(out)
    dpo = card_arguments(out, "train_dpo.py")
    monkeypatch.chdir(card_folder(out))

    assert dpo["keywords"] == ["easy", "hardq", "hardd"]
    for keyword, rows in files.items():
        records = read_as_spa_vl_rlhf([keyword], "config_train.json")
        assert [(r["id"], r["question"], r["chosen"], r["rejected"]) for r in records] == [
            (row["id"], row["question"], row["chosen"], row["rejected"]) for row in rows
        ]
        for record, row in zip(records, rows, strict=True):
            assert open_image("images", record) == (source / "images" / row["image"]).read_bytes()
            assert record["image"].startswith(f"{hate}/")
    stored = dict(Pair.objects.values_list("source_id", "question__question_type"))
    assert stored["233"] == QuestionType.EASY and stored["253"] == QuestionType.HARD_STATEMENT


def test_the_card_gives_the_dpo_and_reward_model_command_lines_of_spa_vl_rlhf(
    tmp_path: Path,
) -> None:
    make_labelled_pair(question=make_question(question_type="easy"))
    out = export_rlhf(tmp_path, ratios={"train": 1, "validation": 0, "test": 0})
    card = (out / "README.md").read_text(encoding="utf-8")
    dpo = card_arguments(out, "train_dpo.py")
    reward = card_arguments(out, "train_rm.py")

    assert 'accelerate launch --config_file "$SPA_VL_RLHF/scripts/config.yaml"' in card
    assert "torchrun --master_port=50100 --standalone --nnodes=1 --nproc-per-node=8" in card
    assert "`--image_folder`" in card and "`images/`" in card
    assert dpo["config_train_path"] == ["config_train.json"]
    assert dpo["policy_model_name_or_path"] == ["$MODELS/llava-v1.5-7b"]
    assert dpo["dpo_beta"] == ["0.1"] and "do_train" in dpo
    # No test or validation split here: the reward model evaluates on the train config.
    assert reward["config_test_path"] == ["config_train.json"]
    assert reward["keywords"] == ["easy"]
    assert {"do_train", "do_eval", "model_name_or_path", "vision_tower"} <= set(reward)
