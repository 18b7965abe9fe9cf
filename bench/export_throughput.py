"""Export throughput: spavl-parquet through the export job against a plain-pyarrow floor.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \\
        .venv/bin/python bench/export_throughput.py --sizes 10000 100000

Seeds N labelled pairs over a few thousand distinct ~80 KB JPEGs into its own database
(``spavl_bench_export``), then, each in a fresh process so peak RSS is its own:
- export: ``run_export_job`` (plan, split, keyset pages, ParquetWriter, card, manifest);
- floor: the same rows read with a psycopg named cursor, written with plain pyarrow, same
  writer settings (row groups of 100, zstd text, uncompressed image bytes).
Prints rows/s and peak RSS for both.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchdb import ensure_database

BENCH_DB = "spavl_bench_export"
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _setup_django() -> None:
    os.environ["DATABASE_URL"] = ensure_database(BENCH_DB)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "spavl_web.settings")
    import django

    django.setup()


def _jpeg(seed: int) -> bytes:
    """About 80 KB: smooth noise upscaled, plus fine grain so JPEG cannot shrink it much."""
    from PIL import Image

    rng = random.Random(seed)
    small = Image.frombytes("RGB", (24, 18), rng.randbytes(24 * 18 * 3))
    picture = small.resize((480, 360), Image.Resampling.BILINEAR)
    grain = Image.frombytes("RGB", (480, 360), rng.randbytes(480 * 360 * 3))
    picture = Image.blend(picture, grain, 0.12)
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=80)
    return buffer.getvalue()


def seed(n: int, images: int) -> None:
    from django.core.management import call_command
    from django.db import connection

    from annotation.models import Image, Pair, Question, Response, TaxonomyNode, text_digest
    from annotation.services.images import inspect_image
    from annotation.services.taxonomy import load_taxonomy

    call_command("migrate", verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE annotation_exportjob, annotation_pair, annotation_response, "
            "annotation_question, annotation_image CASCADE"
        )
    if not TaxonomyNode.objects.exists():
        load_taxonomy()
    subcategories = list(TaxonomyNode.objects.active().subcategories().order_by("pk"))
    import hashlib

    made = []
    for index in range(images):
        data = _jpeg(index)
        fmt, width, height, dhash = inspect_image(data)
        made.append(
            Image(
                sha256=hashlib.sha256(data).hexdigest(),
                data=data,
                format=fmt,
                width=width,
                height=height,
                byte_size=len(data),
                dhash=dhash,
            )
        )
        if len(made) == 500:
            Image.objects.bulk_create(made)
            made = []
    Image.objects.bulk_create(made)
    image_ids = list(Image.objects.order_by("pk").values_list("pk", flat=True))
    for start in range(0, n, 5000):
        count = min(5000, n - start)
        questions = [
            Question(
                image_id=image_ids[(start + i) % len(image_ids)],
                text=f" Q{start + i}: what does the picture show?",
                text_sha256=text_digest(f" Q{start + i}: what does the picture show?"),
                subcategory=subcategories[(start + i) % len(subcategories)],
            )
            for i in range(count)
        ]
        Question.objects.bulk_create(questions)
        responses = []
        for question in questions:
            for side in "ab":
                text = f"{side} answer to {question.text} " + "lorem ipsum " * 40
                responses.append(
                    Response(
                        question=question,
                        model_name=f"model-{side}",
                        text=text,
                        text_sha256=text_digest(text),
                    )
                )
        Response.objects.bulk_create(responses)
        Pair.objects.bulk_create(
            Pair(
                question=q,
                response_a=responses[2 * i],
                response_b=responses[2 * i + 1],
                origin="imported",
                final_label="imported",
                final_chosen="a",
            )
            for i, q in enumerate(questions)
        )
    # Fresh statistics, as after an import: without them the planner seq-scans the pair and
    # question tables for every page of 100 ids (the floor's single hash join does not care).
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def run_export(out: Path) -> int:
    from annotation.services.export import ExportSpec, create_export_job, run_export_job

    spec = ExportSpec(name="bench", ratios={"train": 1.0, "validation": 0.0, "test": 0.0})
    job = create_export_job(spec=spec, export_format="spavl-parquet", output_dir=out)
    return run_export_job(job_id=job.pk).done


def run_floor(out: Path) -> int:
    import pyarrow as pa
    from django.db import connection

    from annotation.services.export.parquet import parquet_schema

    connection.ensure_connection()
    raw = connection.connection
    assert raw is not None
    sql = (
        "SELECT p.id, i.data, q.text, ra.text, rb.text FROM annotation_pair p "
        "JOIN annotation_question q ON q.id = p.question_id "
        "JOIN annotation_image i ON i.id = q.image_id "
        "JOIN annotation_response ra ON ra.id = p.response_a_id "
        "JOIN annotation_response rb ON rb.id = p.response_b_id ORDER BY p.id"
    )
    schema = parquet_schema("train", provenance=False)
    import pyarrow.parquet as pq

    rows = 0
    # Binary results, as the export reads them: hex text would double the bytes moved.
    with raw.transaction(), raw.cursor(name="floor", binary=True) as cursor:
        cursor.execute(sql)
        writer = pq.ParquetWriter(
            str(out / "floor.parquet"),
            schema,
            version="2.6",
            compression={
                "image.bytes": "NONE",
                "image.path": "ZSTD",
                "question": "ZSTD",
                "chosen": "ZSTD",
                "rejected": "ZSTD",
                "image_name": "ZSTD",
            },
            use_dictionary=["image.path"],
        )
        while batch := cursor.fetchmany(100):
            names = [f"{row[0]}.jpg" for row in batch]
            table = pa.Table.from_arrays(
                [
                    pa.array(
                        [{"bytes": r[1], "path": n} for r, n in zip(batch, names, strict=True)],
                        type=schema.field("image").type,
                    ),
                    pa.array([r[2] for r in batch]),
                    pa.array([r[3] for r in batch]),
                    pa.array([r[4] for r in batch]),
                    pa.array(names),
                ],
                schema=schema,
            )
            writer.write_table(table, row_group_size=100)
            rows += len(batch)
        writer.close()
    return rows


def _child(mode: str) -> None:
    _setup_django()
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as folder:
        started = time.perf_counter()
        rows = (run_export if mode == "export" else run_floor)(Path(folder))
        seconds = time.perf_counter() - started
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across fork + exec.
    status = Path("/proc/self/status").read_text()
    peak_kb = next(line for line in status.splitlines() if line.startswith("VmHWM")).split()[1]
    peak_mb = int(peak_kb) / 1024
    print(json.dumps({"mode": mode, "rows": rows, "seconds": seconds, "peak_rss_mb": peak_mb}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--images", type=int, default=3000)
    parser.add_argument("--child", choices=["export", "floor"])
    parser.add_argument("--reuse", action="store_true", help="Keep the data already seeded.")
    args = parser.parse_args()
    if args.child:
        _child(args.child)
        return
    _setup_django()
    for n in args.sizes:
        started = time.perf_counter()
        if not args.reuse:
            seed(n, min(args.images, n))
        print(f"N={n}: seeded in {time.perf_counter() - started:.0f} s", flush=True)
        results = {}
        for mode in ("floor", "export"):
            output = (
                subprocess.run(
                    [sys.executable, __file__, "--child", mode],
                    check=True,
                    capture_output=True,
                    text=True,
                )
                .stdout.strip()
                .splitlines()[-1]
            )
            results[mode] = json.loads(output)
        for mode, result in results.items():
            rate = result["rows"] / result["seconds"]
            print(
                f"  {mode:6}: {result['rows']} rows in {result['seconds']:.1f} s = "
                f"{rate:,.0f} rows/s, peak RSS {result['peak_rss_mb']:.0f} MB",
                flush=True,
            )
        ratio = (results["export"]["rows"] / results["export"]["seconds"]) / (
            results["floor"]["rows"] / results["floor"]["seconds"]
        )
        print(f"  export / floor rows/s: {ratio:.0%}", flush=True)


if __name__ == "__main__":
    main()
