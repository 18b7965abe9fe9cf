"""`rlhf-json` and `dpo-jsonl`: one tar per split with the records and an image folder.

The tar holds ``images/class1/class2/class3/N.jpg`` (original bytes, the extension of the real
format) and ``<split>.json`` (SPA-VL-RLHF: a JSON list of {id, image, question, chosen,
rejected}, ``image`` relative to ``images/``) or ``<split>.jsonl`` (DPO: one {prompt, images,
chosen, rejected} per line, ``images`` relative to the tar root). Images are streamed into the
tar as rows arrive; the records go to a temporary file and are added last, since a tar member
needs its size up front. Fixed owner, mode and mtime keep the tar byte-identical between runs.
"""

from __future__ import annotations

import io
import json
import tarfile
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from annotation.models import ExportFormat
from annotation.services.export.files import HashingSink
from annotation.services.export.rows import ExportRow

IMAGE_ROOT = "images"


def _member(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = 0
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _record(row: ExportRow, *, export_format: str, separate: bool, provenance: bool) -> dict:
    first, second = ("response_a", "response_b") if separate else ("chosen", "rejected")
    if export_format == ExportFormat.RLHF_JSON:
        record: dict[str, Any] = {"id": row.pair_id, "image": row.image_name}
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


def write_archive_shard(
    sink: HashingSink,
    pages: Iterable[list[ExportRow]],
    *,
    split: str,
    export_format: str,
    provenance: bool,
    scratch: Path,
) -> int:
    """Write one split's tar to ``sink``; return the number of records."""
    separate = split not in ("train", "validation", "test")
    is_list = export_format == ExportFormat.RLHF_JSON
    added: set[str] = set()
    rows = 0
    with (
        tempfile.TemporaryFile(dir=scratch) as records,
        tarfile.open(fileobj=sink, mode="w", format=tarfile.PAX_FORMAT) as tar,  # type: ignore[call-overload]
    ):
        records.write(b"[\n" if is_list else b"")
        for page in pages:
            for row in page:
                if row.image_name not in added:
                    added.add(row.image_name)
                    info = _member(f"{IMAGE_ROOT}/{row.image_name}", len(row.image_bytes))
                    tar.addfile(info, io.BytesIO(row.image_bytes))
                record = _record(
                    row, export_format=export_format, separate=separate, provenance=provenance
                )
                separator = b",\n" if is_list and rows else b""
                records.write(separator + json.dumps(record, ensure_ascii=False).encode())
                records.write(b"" if is_list else b"\n")
                rows += 1
        records.write(b"\n]\n" if is_list else b"")
        size = records.tell()
        records.seek(0)
        tar.addfile(_member(f"{split}.{'json' if is_list else 'jsonl'}", size), records)
    return rows
