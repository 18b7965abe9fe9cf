"""Hostile files: a corpus the tests write (parquet bombs, deep and huge JSON, bad bytes, FIFOs,
broken images) with the outcome expected of each, and random rows through every row parser."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from django.conf import settings as django_settings
from django.db import connection
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from annotation.exceptions import ImportFileError
from annotation.models import ImportBatch, ImportStatus, Question
from annotation.services.imports import import_file
from annotation.services.imports.eval_json import EvalJsonSource
from annotation.services.imports.jsonfile import READ_BLOCK, check_json_list, json_list_rows
from annotation.services.imports.readahead import ReadStalled, read_ahead
from annotation.services.imports.responses_jsonl import ResponsesJsonlSource
from annotation.services.imports.rlhf_json import RlhfJsonSource
from annotation.services.imports.rows import BadRow, ImportRow, TaxonomyResolver
from annotation.services.imports.spavl_parquet import SpavlParquetSource
from tests.factories import (
    image_bytes,
    image_claiming_size,
    write_image_file,
    write_json,
    write_jsonl,
    write_parquet,
    write_parquet_bomb,
)

pytestmark = pytest.mark.usefixtures("spavl_taxonomy")

ROOT = Path(__file__).resolve().parent.parent.parent
BULLY_NAME = "Representation & ToxicityHarms/Toxic/bully/7.jpg"
HATE = {"class1": "Representation & ToxicityHarms", "class2": "Toxic", "class3": "hate"}
DECLARED = 500_000_000  # bytes of one bomb image, as its page header says
RSS_LIMIT_MB = 400
# Only reached when the code under test blocks on a FIFO: long enough never to race a pass.
FIFO_WATCH_S = 10.0


def bomb_row(n: int, **changes: Any) -> dict[str, Any]:
    row = {"image": image_bytes(seed=n), "question": f"Question {n}?", "image_name": BULLY_NAME}
    return {**row, **changes}


def train_row(n: int, image: bytes) -> dict[str, Any]:
    return {
        "image": {"bytes": image, "path": f"{n}.png"},
        "question": f"Question {n}?",
        "chosen": f"No ({n}).",
        "rejected": f"Yes ({n}).",
        "image_name": BULLY_NAME,
    }


def eval_row(n: int, **changes: Any) -> dict[str, Any]:
    return {**HATE, "question": f"Question {n}?", "response": f"Answer {n}.", **changes}


def jsonl_row(n: int, **changes: Any) -> dict[str, Any]:
    return {**eval_row(n), "image": "a.jpg", "model": "m", **changes}


def import_eval_json(path: Path) -> ImportBatch:
    return import_file(path=path, import_format="eval-json")


def reasons(batch: ImportBatch) -> dict[int, str]:
    return {int(error["row"]): str(error["reason"]) for error in batch.errors}


def write_sparse(path: Path, *, before: bytes, hole: int, after: bytes) -> Path:
    """``before``, ``hole`` zero bytes that take no disk, then ``after``."""
    with path.open("wb") as handle:
        handle.write(before)
        handle.seek(hole, os.SEEK_CUR)
        handle.write(after)
    return path


@contextmanager
def released_if_blocked(fifo: Path) -> Iterator[list[Path]]:
    """If the code under test blocks on ``fifo``, open its other end after FIFO_WATCH_S, so the
    test fails (the list it yields is not empty) instead of hanging."""
    done, released = threading.Event(), []

    def watch() -> None:
        if done.wait(FIFO_WATCH_S):
            return
        while not done.wait(0.1):
            try:
                descriptor = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:  # nobody is reading it (yet)
                continue
            released.append(fifo)
            os.close(descriptor)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield released
    finally:
        done.set()
        watcher.join()


# Parquet: bombs are refused from their page headers, before anything is decompressed.


@pytest.mark.parametrize("honest_footer", [True, False])
def test_it_rejects_a_parquet_image_bomb_from_its_page_header_without_reading_it(
    tmp_path: Path, honest_footer: bool
) -> None:
    groups = [[bomb_row(1)], [bomb_row(2, image=DECLARED)], [bomb_row(3)]]
    path = write_parquet_bomb(
        path=tmp_path / "bomb.parquet", row_groups=groups, honest_footer=honest_footer
    )

    batch = import_file(path=path, import_format="spavl-parquet")

    assert (batch.rows_read, batch.rows_created, batch.rows_rejected) == (3, 2, 1)
    [error] = batch.errors
    assert error["row"] == 2
    assert f"image for this row holds {DECLARED + 4} bytes uncompressed" in str(error["reason"])
    assert str(error["reason"]).endswith("page limit: not read")


def test_it_refuses_the_row_group_of_a_bomb_naming_the_bombs_own_row(tmp_path: Path) -> None:
    groups = [[bomb_row(1), bomb_row(2, image=DECLARED), bomb_row(3)], [bomb_row(4)]]
    path = write_parquet_bomb(path=tmp_path / "bomb.parquet", row_groups=groups)

    batch = import_file(path=path, import_format="spavl-parquet")

    found = reasons(batch)
    assert set(found) == {1, 2, 3}
    assert "for this row" in found[2]
    assert found[1] == found[3]
    assert found[1].startswith("not read: its row group (0) needs")
    assert Question.objects.get().text == "Question 4?"


def test_it_rejects_an_image_or_text_above_its_limit_before_it_becomes_python_bytes(
    tmp_path: Path, settings: Any
) -> None:
    settings.IMAGE_MAX_BYTES = 50_000
    settings.IMPORT_ROW_MAX_BYTES = 10_000
    rows = [bomb_row(1), bomb_row(2, image=60_000), bomb_row(3, question="x" * 20_000)]
    path = write_parquet_bomb(path=tmp_path / "big.parquet", row_groups=[rows])

    batch = import_file(path=path, import_format="spavl-parquet")

    found = reasons(batch)
    assert found[2] == "image is 60000 bytes, above 50000"
    assert found[3].startswith("text fields hold 20") and found[3].endswith("above 10000")
    assert batch.rows_created == 1


CHILD = """
import json, sys
from pathlib import Path
import django
django.setup()
from annotation.services.imports.rows import BadRow, TaxonomyResolver
from annotation.services.imports.spavl_parquet import SpavlParquetSource
source = SpavlParquetSource(path=Path(sys.argv[1]), split="", taxonomy=TaxonomyResolver())
rows = [row.reason if isinstance(row, BadRow) else "" for row in source.rows()]
status = Path("/proc/self/status").read_text()
peak = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")))
print(json.dumps({"rows": rows, "peak_mb": peak / 1024}))
"""


def child_env() -> dict[str, str]:
    """This test database, for a child process that only reads it."""
    db = connection.settings_dict
    user = quote(db["USER"] or "") + (f":{quote(db['PASSWORD'])}" if db["PASSWORD"] else "")
    url = f"postgres://{user}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    return {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "spavl_web.settings"}


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmHWM from /proc")
@pytest.mark.parametrize(
    ("row_groups", "dictionary"),
    [
        ([[{"image": 2_000_000_000}]], False),  # one image of 2 GB
        ([[{"image": 20 << 20}] * 20], True),  # one 20 MB dictionary value in 20 rows
    ],
    ids=["2-GB-image", "dictionary-20-MB-x-20"],
)
def test_reading_a_parquet_bomb_stays_under_400_mb(
    tmp_path: Path, row_groups: list[list[dict[str, Any]]], dictionary: bool
) -> None:
    path = write_parquet_bomb(
        path=tmp_path / "bomb.parquet", row_groups=row_groups, dictionary=dictionary
    )

    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(path)],
        cwd=ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(result["rows"]) == sum(len(rows) for rows in row_groups)
    assert result["peak_mb"] < RSS_LIMIT_MB


@pytest.mark.parametrize("fmt", django_settings.IMAGE_FORMATS)
def test_it_rejects_truncated_and_pixel_bomb_images_in_every_allowed_format(
    tmp_path: Path, fmt: str
) -> None:
    whole = image_bytes(seed=7, fmt=fmt, size=(200, 150))
    bomb = image_claiming_size(fmt=fmt, width=8000, height=8000)
    rows = [train_row(1, whole), train_row(2, whole[: len(whole) // 2]), train_row(3, bomb)]
    path = write_parquet(path=tmp_path / "images.parquet", rows=rows)

    batch = import_file(path=path, import_format="spavl-parquet")

    found = reasons(batch)
    assert set(found) == {2, 3}
    assert "not a readable" in found[2]
    assert "pixels" in found[3] or "too large" in found[3]
    assert batch.rows_created == 1


# JSON lists: read one row at a time; a row too deep or too large is rejected on its own.


def test_it_rejects_a_json_row_nested_too_deep_and_keeps_the_others(tmp_path: Path) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    text = f"[{json.dumps(eval_row(1))}, {deep}, {json.dumps(eval_row(3))}]"
    path = tmp_path / "deep.json"
    path.write_text(text, encoding="utf-8")

    batch = import_eval_json(path)

    assert batch.errors == [{"row": 2, "reason": "row nests deeper than 64 levels"}]
    assert batch.rows_created == 2


def test_it_rejects_a_json_row_above_the_row_limit(tmp_path: Path, settings: Any) -> None:
    settings.IMPORT_ROW_MAX_BYTES = 10_000
    rows = [eval_row(1), eval_row(2, response="x" * 20_000), eval_row(3)]
    path = write_json(path=tmp_path / "big.json", value=rows)

    batch = import_eval_json(path)

    [error] = batch.errors
    assert error["row"] == 2
    assert str(error["reason"]).startswith("row is 20") and "above 10000" in str(error["reason"])
    assert batch.rows_created == 2


def test_it_rejects_a_sparse_half_gigabyte_json_row_without_holding_it(tmp_path: Path) -> None:
    path = write_sparse(
        tmp_path / "sparse.json",
        before=f'[{json.dumps(eval_row(1))}, {{"question": "'.encode(),
        hole=512 << 20,
        after=f'"}}, {json.dumps(eval_row(3))}]'.encode(),
    )

    batch = import_eval_json(path)

    [error] = batch.errors
    assert error["row"] == 2
    assert f"above {django_settings.IMPORT_ROW_MAX_BYTES}" in str(error["reason"])
    assert batch.rows_created == 2


def test_it_fails_a_sparse_file_of_zero_bytes_after_its_first_block(tmp_path: Path) -> None:
    path = write_sparse(tmp_path / "zeros.json", before=b"", hole=1 << 30, after=b"\0")

    with pytest.raises(ImportFileError, match="not a JSON list of rows: it starts with"):
        import_eval_json(path)


def test_it_fails_a_json_syntax_error_in_the_middle_with_its_position(tmp_path: Path) -> None:
    text = f'[{json.dumps(eval_row(1))},\n{json.dumps(eval_row(2))},\n{{"question": }}]'
    path = tmp_path / "broken.json"
    path.write_text(text, encoding="utf-8")

    with pytest.raises(
        ImportFileError, match=r"not valid JSON: Expecting value: line 3, byte \d+ \(row 3\)"
    ):
        import_eval_json(path)

    assert ImportBatch.objects.get().status == ImportStatus.FAILED


@pytest.mark.parametrize("import_format", ["rlhf-json", "eval-json", "responses-jsonl"])
def test_it_rejects_invalid_utf8_and_nul_characters_row_by_row(
    tmp_path: Path, import_format: str
) -> None:
    write_image_file(root=tmp_path, relative="a.jpg", data=image_bytes(seed=1))
    rows = [
        {**jsonl_row(1), "chosen": "No.", "rejected": "Yes."},
        {**jsonl_row(2, question="has a \x00 NUL"), "chosen": "No.", "rejected": "Yes."},
        {**jsonl_row(3), "chosen": "No.", "rejected": "Yes."},
    ]
    if import_format == "responses-jsonl":
        path = write_jsonl(path=tmp_path / "rows.jsonl", rows=rows)
        raw = path.read_bytes().replace(b"Question 3?", b"Question \xff?")
    else:
        path = write_json(path=tmp_path / "rows.json", value=rows)
        raw = path.read_bytes().replace(b"Question 3?", b"Question \xff?")
    path.write_bytes(raw)

    batch = import_file(path=path, import_format=import_format, image_root=tmp_path)

    found = reasons(batch)
    assert set(found) == {2, 3}
    assert "NUL" in found[2]
    assert "UTF-8" in found[3]
    assert batch.rows_created == 1


def test_it_fails_a_raw_nul_byte_in_a_json_list_with_its_position(tmp_path: Path) -> None:
    path = write_json(path=tmp_path / "nul.json", value=[eval_row(1), eval_row(2)])
    path.write_bytes(path.read_bytes().replace(b"Question 2?", b"Question \x00?"))

    with pytest.raises(
        ImportFileError, match=r"Invalid control character at: line 1, byte \d+ \(row 2\)"
    ):
        import_eval_json(path)


# JSON lines: a line above the limit is rejected as that row and reading goes on.


def test_it_rejects_a_jsonl_line_above_the_limit_and_reads_on(
    tmp_path: Path, settings: Any
) -> None:
    settings.IMPORT_ROW_MAX_BYTES = 10_000
    write_image_file(root=tmp_path, relative="a.jpg", data=image_bytes(seed=1))
    rows = [jsonl_row(1, response="x" * 20_000), jsonl_row(2), jsonl_row(3, response="y" * 9000)]
    path = write_jsonl(path=tmp_path / "r.jsonl", rows=rows)

    batch = import_file(path=path, import_format="responses-jsonl")

    [error] = batch.errors
    assert error["row"] == 1
    assert str(error["reason"]).startswith("line is 20") and "above 10000" in str(error["reason"])
    assert batch.rows_created == 2


def test_it_rejects_a_sparse_giant_jsonl_line_and_a_deep_one(tmp_path: Path) -> None:
    write_image_file(root=tmp_path, relative="a.jpg", data=image_bytes(seed=1))
    deep = b"[" * 100_000 + b"]" * 100_000
    path = write_sparse(
        tmp_path / "r.jsonl",
        before=json.dumps(jsonl_row(1)).encode() + b'\n{"question": "',
        hole=512 << 20,
        after=b'"}\n' + deep + b"\n" + json.dumps(jsonl_row(4)).encode() + b"\n",
    )

    batch = import_file(path=path, import_format="responses-jsonl")

    found = reasons(batch)
    assert set(found) == {2, 3}
    assert f"above {django_settings.IMPORT_ROW_MAX_BYTES}" in found[2]
    assert found[3].startswith("line is not valid JSON")
    assert batch.rows_created == 2


# Only regular files are opened: a FIFO, a socket or a folder never blocks the import.


@pytest.mark.parametrize(
    "import_format", ["spavl-parquet", "rlhf-json", "eval-json", "responses-jsonl"]
)
def test_it_refuses_a_fifo_as_the_data_file_without_waiting_on_it(
    tmp_path: Path, import_format: str
) -> None:
    fifo = tmp_path / "data"
    os.mkfifo(fifo)

    with (
        released_if_blocked(fifo) as released,
        pytest.raises(ImportFileError, match=r"data is a FIFO \(named pipe\), not a regular file"),
    ):
        import_file(path=fifo, import_format=import_format)

    assert not released
    assert ImportBatch.objects.get().status == ImportStatus.FAILED


def test_it_refuses_a_parquet_folder_holding_a_fifo_shard(tmp_path: Path) -> None:
    write_parquet(path=tmp_path / "a.parquet", rows=[train_row(1, image_bytes(seed=1))])
    os.mkfifo(tmp_path / "b.parquet")

    with (
        released_if_blocked(tmp_path / "b.parquet") as released,
        pytest.raises(ImportFileError, match=r"b.parquet is a FIFO \(named pipe\)"),
    ):
        import_file(path=tmp_path, import_format="spavl-parquet")

    assert not released
    assert not Question.objects.exists()


def make_special(path: Path, kind: str) -> socket.socket | None:
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "folder":
        path.mkdir()
    else:
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(path))
        return listener
    return None


@pytest.mark.parametrize("kind", ["fifo", "socket", "folder"])
@pytest.mark.parametrize("import_format", ["rlhf-json", "eval-json", "responses-jsonl"])
def test_it_rejects_an_image_that_is_not_a_regular_file_without_waiting_on_it(
    tmp_path: Path, import_format: str, kind: str
) -> None:
    write_image_file(root=tmp_path, relative="a.jpg", data=image_bytes(seed=1))
    listener = make_special(tmp_path / "s.jpg", kind)
    rows = [
        {**jsonl_row(n, image=image), "chosen": "No.", "rejected": "Yes."}
        for n, image in ((1, "a.jpg"), (2, "s.jpg"))
    ]
    if import_format == "responses-jsonl":
        path = write_jsonl(path=tmp_path / "rows.jsonl", rows=rows)
    else:
        path = write_json(path=tmp_path / "rows.json", value=rows)

    try:
        with released_if_blocked(tmp_path / "s.jpg") as released:
            batch = import_file(path=path, import_format=import_format, image_root=tmp_path)
    finally:
        if listener is not None:
            listener.close()

    assert not released
    [error] = batch.errors
    assert error["row"] == 2
    assert "s.jpg is a" in str(error["reason"])
    assert str(error["reason"]).endswith("not a regular file")
    assert batch.rows_created == 1


def test_a_reader_that_stalls_is_given_up_instead_of_waited_on() -> None:
    release = threading.Event()

    def rows() -> Iterator[int]:
        yield 1
        release.wait()  # a read hung on a network file system
        yield 2

    read = read_ahead(rows(), prepare=lambda item: 0, max_bytes=10, stall_s=0.2)
    try:
        assert next(read) == 1
        with pytest.raises(ReadStalled):
            next(read)
    finally:
        release.set()


# Random and malformed rows through every row parser: a row or a rejection, never an exception.

TEXT = st.text(st.characters(exclude_categories=()), max_size=12)
SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | TEXT | st.binary(max_size=8)
FIELD_TEXT = st.sampled_from(
    [
        "",
        " ",
        "q",
        "a.jpg",
        "s.jpg",
        "folder.jpg",
        "missing.jpg",
        "../a.jpg",
        "/etc/hostname",
        "a/../../b.jpg",
        "Representation & ToxicityHarms",
        "Toxic",
        "hate",
        "Representation & ToxicityHarms/Toxic/hate/a.jpg",
        "easy",
        "hardq",
        "x" * 300,
        "\udcff",
        "nul\x00",
    ]
)
VALUES = st.recursive(
    SCALARS | FIELD_TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=8,
)
FIELDS = [
    "id",
    "image",
    "question",
    "chosen",
    "rejected",
    "response",
    "model",
    "question_type",
    "class1",
    "class2",
    "class3",
    "image_name",
]
RECORDS = st.dictionaries(st.sampled_from(FIELDS) | TEXT, VALUES | FIELD_TEXT, max_size=10)
IMAGES = st.fixed_dictionaries(
    {}, optional={"bytes": st.binary(max_size=64) | VALUES, "path": VALUES | FIELD_TEXT}
)
PARQUET_RECORDS = st.builds(
    lambda record, image: {**record, "image": image} if image is not None else record,
    RECORDS,
    st.none() | IMAGES | st.binary(max_size=64) | VALUES,
)
PROPERTY = hypothesis_settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture
def image_root(tmp_path: Path) -> Iterator[Path]:
    """An image root holding a good image, a FIFO and a folder, for the paths drawn above."""
    root = tmp_path / "images"
    write_image_file(root=root, relative="a.jpg", data=image_bytes(seed=1))
    write_image_file(root=root, relative="Representation & ToxicityHarms/Toxic/hate/a.jpg")
    os.mkfifo(root / "s.jpg")
    (root / "folder.jpg").mkdir()
    with released_if_blocked(root / "s.jpg") as released:
        yield root
    assert not released, "a row parser blocked on a FIFO"


@pytest.fixture
def json_sources(tmp_path: Path, image_root: Path) -> list[Any]:
    listing = write_json(path=tmp_path / "rows.json", value=[])
    lines = write_jsonl(path=tmp_path / "rows.jsonl", rows=[{}])
    taxonomy = TaxonomyResolver()
    return [
        RlhfJsonSource(path=listing, image_root=image_root, taxonomy=taxonomy),
        EvalJsonSource(path=listing, image_root=image_root, model_name="m", taxonomy=taxonomy),
        ResponsesJsonlSource(path=lines, image_root=image_root, taxonomy=taxonomy),
    ]


@pytest.fixture
def parquet_sources(tmp_path: Path) -> list[SpavlParquetSource]:
    row = train_row(1, image_bytes(seed=1))
    layouts = {
        "train": row,
        "validation": {**{k: v for k, v in row.items() if k != "image_name"}, **HATE},
        "test": {"image": row["image"], "question": "q", **HATE},
    }
    taxonomy = TaxonomyResolver()
    return [
        SpavlParquetSource(
            path=write_parquet(path=tmp_path / f"{split}.parquet", rows=[values]),
            split=split,
            taxonomy=taxonomy,
        )
        for split, values in layouts.items()
    ]


@PROPERTY
@given(value=RECORDS | VALUES)
def test_every_json_row_parser_gives_a_row_or_a_rejection(
    json_sources: list[Any], value: Any
) -> None:
    rlhf, evaluation, lines = json_sources
    for source in (rlhf, evaluation):
        assert isinstance(source._row(7, value), ImportRow | BadRow)
    raw = json.dumps(value, default=repr).encode()
    assert isinstance(lines._row(7, raw), ImportRow | BadRow)


@PROPERTY
@given(
    raw=st.binary(max_size=64)
    | st.integers(1, 50_000).map(lambda depth: b"[" * depth + b"]" * depth)
    | RECORDS.map(lambda record: json.dumps(record, default=repr).encode())
)
def test_the_jsonl_row_parser_gives_a_row_or_a_rejection_for_any_bytes(
    json_sources: list[Any], raw: bytes
) -> None:
    assert isinstance(json_sources[2]._row(7, raw), ImportRow | BadRow)


@PROPERTY
@given(record=PARQUET_RECORDS)
def test_the_parquet_row_parser_gives_a_row_or_a_rejection(
    parquet_sources: list[SpavlParquetSource], record: dict[str, Any]
) -> None:
    for source in parquet_sources:
        assert isinstance(source._row(7, record), ImportRow | BadRow)


@PROPERTY
@given(
    data=st.binary(max_size=80)
    | VALUES.map(lambda value: json.dumps(value, default=repr).encode()),
    cut=st.integers(0, 80),
)
def test_a_json_list_file_of_any_bytes_gives_rows_or_fails_as_a_file(
    tmp_path: Path, data: bytes, cut: int
) -> None:
    path = tmp_path / "any.json"
    path.write_bytes(data[: len(data) - cut] if cut < len(data) else data)
    try:
        check_json_list(path)
        rows = list(json_list_rows(path))
    except ImportFileError:
        return
    assert all(isinstance(row, BadRow) or len(row) == 2 for row in rows)


JSON_DOCUMENT_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=10,
)


@hypothesis_settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(values=st.lists(JSON_DOCUMENT_VALUES, max_size=6), shift=st.integers(0, 64))
def test_a_json_list_is_read_back_element_by_element_across_read_blocks(
    tmp_path_factory: pytest.TempPathFactory, values: list[Any], shift: int
) -> None:
    # Leading spaces put the list across the first read block's end, ``shift`` bytes before it.
    path = tmp_path_factory.mktemp("lists") / "list.json"
    path.write_bytes(b" " * (READ_BLOCK - shift) + json.dumps(values, indent=1).encode())

    assert [row[1] for row in json_list_rows(path) if not isinstance(row, BadRow)] == values
