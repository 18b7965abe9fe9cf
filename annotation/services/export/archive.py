"""`rlhf-json`, `dpo-jsonl` and `safe-rlhf-jsonl`: one tar per split with the records and an
image folder.

All hold ``images/class1/class2/class3/N.jpg`` (original bytes, the extension of the real
format). rlhf-json is laid out for SPA-VL-RLHF, whose ``load_data`` reads a config mapping
keywords to JSON lists and concatenates the lists of the keywords asked for: one list of {id,
image, question, chosen, rejected} per question type, ``<keyword>_<split>.json`` (keywords
``easy``, ``hardq``, ``hardd``, and ``unknown`` for pairs of no known type), ``image`` relative
to ``images/`` (its ``--image_folder``), and ``config_<split>.json`` naming the split's lists.
dpo-jsonl holds ``<split>.jsonl``: one {prompt, images, chosen, rejected} per line, ``images``
relative to the tar root; safe-rlhf-jsonl the same layout with one PKU-SafeRLHF line per pair
(``_safe_rlhf_record``). Images are streamed into the tar as rows arrive; the records go to
temporary files added last, since a tar member needs its size up front. Fixed owner, mode and
mtime keep the tar byte-identical between runs.
"""

from __future__ import annotations

import io
import json
import tarfile
import tempfile
from collections import Counter
from collections.abc import Iterable
from contextlib import ExitStack
from pathlib import Path
from tarfile import PAX_FORMAT
from typing import IO, Any, cast

from annotation.models import ExportFormat, QuestionType
from annotation.services.export.files import HashingSink
from annotation.services.export.plan import ExportPlan
from annotation.services.export.rows import ExportRow
from annotation.services.export.spec import SPLITS
from annotation.services.imports.rlhf_json import RLHF_KEYWORDS

IMAGE_ROOT = "images"
# SPA-VL-RLHF's order (its reward model's default --keywords), then pairs of unknown type.
KEYWORDS = tuple(RLHF_KEYWORDS.values())


def keyword_of(plan: ExportPlan, pair_id: int) -> str:
    question_type = plan.question_types.get(pair_id, QuestionType.UNKNOWN)
    return RLHF_KEYWORDS.get(question_type, RLHF_KEYWORDS[QuestionType.UNKNOWN])


def keyword_counts(plan: ExportPlan, split: str) -> dict[str, int]:
    """Records per keyword in one split of an rlhf-json plan, in load order, none empty."""
    counts = Counter(
        keyword_of(plan, pair_id)
        for shard in plan.shards
        if shard.split == split
        for pair_id in shard.pair_ids
    )
    return {keyword: counts[keyword] for keyword in KEYWORDS if counts[keyword]}


def records_name(keyword: str, split: str) -> str:
    return f"{keyword}_{split}.json"


def config_name(split: str) -> str:
    return f"config_{split}.json"


def data_path(name: str, *, data_root: str) -> str:
    """A file of the unpacked export as the configs and commands name it."""
    return f"{data_root.rstrip('/')}/{name}" if data_root else name


def _member(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = 0
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _sides(separate: bool) -> tuple[str, str]:
    return ("response_a", "response_b") if separate else ("chosen", "rejected")


# PKU-SafeRLHF's severity levels: 0 for a safe response, then minor, moderate, severe.
SEVERITY_LEVELS = {"minor": 1, "moderate": 2, "severe": 3}
_SIDE_IDS = {"a": 0, "b": 1}


def _severity_level(safe: bool | None, severity: str) -> int | None:
    if safe is None:
        return None
    return 0 if safe else SEVERITY_LEVELS.get(severity)


def _safe_rlhf_record(row: ExportRow, *, provenance: bool) -> dict[str, Any]:
    """A safe-rlhf-jsonl line: PKU-SafeRLHF's fields, responses in the pair's order (0 is A),
    the image's path relative to the tar root, and the pair id."""
    record: dict[str, Any] = {
        "prompt": row.question,
        "image": f"{IMAGE_ROOT}/{row.image_name}",
        "response_0": row.first,
        "response_1": row.second,
        "response_0_source": row.first_model,
        "response_1_source": row.second_model,
        "better_response_id": _SIDE_IDS[row.final_helpful],
        "safer_response_id": _SIDE_IDS[row.final_safer],
        "is_response_0_safe": row.a_safe,
        "is_response_1_safe": row.b_safe,
        "response_0_severity_level": _severity_level(row.a_safe, row.a_severity),
        "response_1_severity_level": _severity_level(row.b_safe, row.b_severity),
        "pair_id": row.pair_id,
    }
    if provenance:
        record |= {
            "final_label": row.final_label,
            "judge_p_response_0_better": row.judge_p_first,
            "provenance": json.loads(row.provenance),
        }
    return record


def _record(row: ExportRow, *, record_id: int | None, separate: bool, provenance: bool) -> dict:
    """An rlhf-json record when ``record_id`` is given, else a dpo-jsonl one."""
    first, second = _sides(separate)
    if record_id is not None:
        record: dict[str, Any] = {"id": record_id, "image": row.image_name}
        record |= {"question": row.question, first: row.first, second: row.second}
    else:
        record = {"prompt": row.question, "images": [f"{IMAGE_ROOT}/{row.image_name}"]}
        record |= {first: row.first, second: row.second}
    if provenance:
        record |= {
            "pair_id": row.pair_id,
            "final_label": row.final_label,
            f"{first}_model": row.first_model,
            f"{second}_model": row.second_model,
            f"judge_p_{first}": row.judge_p_first,
        }
    return record


class _RecordFiles:
    """The records of each tar member in a temporary file of its own: JSON lists or lines."""

    def __init__(self, stack: ExitStack, *, scratch: Path, is_list: bool) -> None:
        self._stack = stack
        self._scratch = scratch
        self._is_list = is_list
        self._files: dict[str, IO[bytes]] = {}
        self._written: Counter[str] = Counter()

    def __contains__(self, name: str) -> bool:
        return name in self._files

    def open(self, name: str) -> IO[bytes]:
        if name not in self._files:
            # The stack closes it, whatever ruff's SIM115 thinks.
            temporary = tempfile.TemporaryFile(dir=self._scratch)  # noqa: SIM115
            handle = self._stack.enter_context(temporary)
            handle.write(b"[" if self._is_list else b"")
            self._files[name] = handle
        return self._files[name]

    def write(self, name: str, encoded: bytes) -> None:
        handle = self.open(name)
        if self._is_list:
            handle.write(b",\n" if self._written[name] else b"\n")
        handle.write(encoded if self._is_list else encoded + b"\n")
        self._written[name] += 1

    def add(self, tar: tarfile.TarFile, name: str) -> None:
        handle = self._files[name]
        handle.write(b"\n]\n" if self._is_list else b"")
        size = handle.tell()
        handle.seek(0)
        tar.addfile(_member(name, size), handle)


def write_archive_shard(
    sink: HashingSink,
    pages: Iterable[list[ExportRow]],
    *,
    split: str,
    export_format: str,
    provenance: bool,
    scratch: Path,
    plan: ExportPlan,
    data_root: str = "",
) -> int:
    """Write one split's tar to ``sink``; return the number of records."""
    rlhf = export_format == ExportFormat.RLHF_JSON
    added: set[str] = set()
    rows = 0
    with ExitStack() as stack:
        # tarfile only calls write() and tell(), which the sink has.
        fileobj = cast(IO[bytes], sink)
        tar = stack.enter_context(tarfile.open(fileobj=fileobj, mode="w", format=PAX_FORMAT))
        records = _RecordFiles(stack, scratch=scratch, is_list=rlhf)
        for row in (row for page in pages for row in page):
            if row.image_name not in added:
                added.add(row.image_name)
                info = _member(f"{IMAGE_ROOT}/{row.image_name}", len(row.image_bytes))
                tar.addfile(info, io.BytesIO(row.image_bytes))
            _add_record(
                records,
                row,
                split=split,
                export_format=export_format,
                plan=plan,
                provenance=provenance,
            )
            rows += 1
        if rlhf:
            _add_rlhf_lists(tar, records, split=split, data_root=data_root)
        else:
            records.open(f"{split}.jsonl")
            records.add(tar, f"{split}.jsonl")
    return rows


def _add_record(
    records: _RecordFiles,
    row: ExportRow,
    *,
    split: str,
    export_format: str,
    plan: ExportPlan,
    provenance: bool,
) -> None:
    separate = split not in SPLITS
    rlhf = export_format == ExportFormat.RLHF_JSON
    if export_format == ExportFormat.SAFE_RLHF_JSONL:
        record = _safe_rlhf_record(row, provenance=provenance)
        records.write(f"{split}.jsonl", json.dumps(record, ensure_ascii=False).encode())
        return
    if not rlhf:
        record = _record(row, record_id=None, separate=separate, provenance=provenance)
        records.write(f"{split}.jsonl", json.dumps(record, ensure_ascii=False).encode())
        return
    record_id = plan.record_ids.get(row.pair_id, row.pair_id)
    record = _record(row, record_id=record_id, separate=separate, provenance=provenance)
    # ASCII only: load_data opens the lists in the locale's encoding, whichever that is.
    records.write(records_name(keyword_of(plan, row.pair_id), split), json.dumps(record).encode())


def _add_rlhf_lists(
    tar: tarfile.TarFile, records: _RecordFiles, *, split: str, data_root: str
) -> None:
    """The split's lists in keyword order and, for a training split, the config naming them
    (from the lists written, so that a pair deleted since the plan never leaves a dangling
    path)."""
    config: dict[str, str] = {}
    for keyword in KEYWORDS:
        name = records_name(keyword, split)
        if name in records:
            records.add(tar, name)
            config[keyword] = data_path(name, data_root=data_root)
    if split in SPLITS:
        encoded = (json.dumps(config, indent=4) + "\n").encode()
        tar.addfile(_member(config_name(split), len(encoded)), io.BytesIO(encoded))
