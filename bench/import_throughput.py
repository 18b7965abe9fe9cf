"""Import throughput: synthetic SPA-VL train parquet with ~80 KB JPEGs into PostgreSQL.

Usage: DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \
           .venv/bin/python bench/import_throughput.py [N ...] [--images 3000] [--keep-files] \
           [--via command|api|both]

For each N it writes a parquet file (row groups of 100, like Hugging Face), recreates the database
``spavl_bench`` (migrate + load_taxonomy), imports the file in a fresh subprocess and prints rows/s
and that subprocess's peak RSS, side by side. ``--via api`` imports it as a pipeline script
would: ``POST /api/v1/imports/`` naming the file under the import root, then the job the worker
runs for that batch (``run_import_job``), timed from the request to the finished batch.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from benchdb import recreate_database
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
BENCH_DB = "spavl_bench"
SUBCATEGORY_NAMES = [
    "Representation & ToxicityHarms/Toxic/bully",
    "Representation & ToxicityHarms/Toxic/hate",
    "Malicious Use/Security threats/cyber",
]
SCHEMA = pa.schema(
    [
        ("image", pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
        ("question", pa.string()),
        ("chosen", pa.string()),
        ("rejected", pa.string()),
        ("image_name", pa.string()),
    ]
)
API_CHILD = """
import json, os, sys, time
from pathlib import Path
import django
django.setup()
from django.contrib.auth.models import User
from django.test import Client
from annotation.models import ImportBatch
from annotation.services.imports.jobs import run_import_job
from spavl_web.tokens import create_token
admin = User.objects.create_superuser("bench-importer")
_, secret = create_token(user=admin, name="bench", scopes=["import"])
client = Client(HTTP_AUTHORIZATION="Token " + secret)
started, cpu = time.perf_counter(), time.process_time()
answer = client.post("/api/v1/imports/", {"format": "spavl-parquet", "path": sys.argv[2]},
                     "application/json", SERVER_NAME="localhost")
assert answer.status_code == 202, answer.content
run_import_job(batch_id=answer.json()["id"])
batch = ImportBatch.objects.get(pk=answer.json()["id"])
followed = client.get(f"/api/v1/imports/{batch.pk}/", SERVER_NAME="localhost").json()
assert followed["status"] == "finished", followed
elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
status = Path("/proc/self/status").read_text()
rss = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")))
print(json.dumps({"rows": batch.rows_read, "created": batch.rows_created,
                  "rejected": batch.rows_rejected, "seconds": elapsed, "rss_kb": rss,
                  "cpu_seconds": cpu, "load": os.getloadavg()[0]}))
"""
IMPORT_CHILD = """
import json, os, sys, time
from pathlib import Path
import django
django.setup()
from annotation.services.imports import import_file
started, cpu = time.perf_counter(), time.process_time()
batch = import_file(path=Path(sys.argv[1]), import_format="spavl-parquet")
elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
# VmHWM is this process's own peak: ru_maxrss would also count the parent's memory, which a
# vfork-started child inherits until exec (the parent holds the generated dataset).
status = Path("/proc/self/status").read_text()
rss = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")))
print(json.dumps({"rows": batch.rows_read, "created": batch.rows_created,
                  "rejected": batch.rows_rejected, "seconds": elapsed, "rss_kb": rss,
                  "cpu_seconds": cpu, "load": os.getloadavg()[0]}))
"""


def noise_jpeg(rng: random.Random) -> bytes:
    """About 80 KB: noise does not compress away, as real photos mostly do not."""
    picture = Image.frombytes("RGB", (320, 320), rng.randbytes(320 * 320 * 3))
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def write_dataset(*, path: Path, rows: int, images: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    pictures = [noise_jpeg(rng) for _ in range(images)]
    with pq.ParquetWriter(path, SCHEMA) as writer:
        for start in range(0, rows, 100):
            batch = []
            for n in range(start, min(rows, start + 100)):
                folder = SUBCATEGORY_NAMES[n % len(SUBCATEGORY_NAMES)]
                batch.append(
                    {
                        "image": {"bytes": pictures[n % images], "path": f"{n}.jpg"},
                        "question": f" Q: What is shown in picture {n}?",
                        "chosen": f"I can't help with that request ({n}).",
                        "rejected": f"Sure. Here is a detailed answer for {n}.",
                        "image_name": f"{folder}/{n % images}.jpg",
                    }
                )
            writer.write_table(pa.Table.from_pylist(batch, schema=SCHEMA))


def bench_env() -> dict[str, str]:
    env = {**os.environ, "DATABASE_URL": recreate_database(BENCH_DB)}
    env.setdefault("DJANGO_SETTINGS_MODULE", "spavl_web.settings")
    env["DEBUG"] = "0"  # Django keeps no query log, as in production
    env["SPAVL_VAR_DIR"] = str(ROOT / "var" / "bench")
    for command in (["migrate", "--no-input", "-v0"], ["load_taxonomy"]):
        subprocess.run(
            [sys.executable, "manage.py", *command],
            cwd=ROOT,
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
    return env


def run(rows: int, images: int, folder: Path, *, keep_files: bool, via: str) -> dict[str, float]:
    path = folder / f"bench-{rows}-{images}.parquet"
    if not (keep_files and path.exists()):
        write_dataset(path=path, rows=rows, images=images)
    env = bench_env()
    env["SPAVL_IMPORT_ROOT"] = str(folder)
    env["ALLOWED_HOSTS"] = "localhost"
    child = API_CHILD if via == "api" else IMPORT_CHILD
    output = subprocess.run(
        [sys.executable, "-c", child, str(path), path.name],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result = json.loads(output.strip().splitlines()[-1])
    result["file_mb"] = path.stat().st_size / 1e6
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("sizes", nargs="*", type=int, default=[10_000, 100_000])
    parser.add_argument("--images", type=int, default=3000)
    parser.add_argument("--folder", type=Path, default=ROOT / "var" / "bench")
    parser.add_argument(
        "--keep-files", action="store_true", help="keep the parquet files and reuse them next time"
    )
    parser.add_argument(
        "--via",
        choices=["command", "api", "both"],
        default="command",
        help="import with import_file as the command does, through the API's job, or both",
    )
    args = parser.parse_args()
    vias = ["command", "api"] if args.via == "both" else [args.via]
    args.folder.mkdir(parents=True, exist_ok=True)
    # CPU seconds are the importing process's own (threads included, PostgreSQL not); the load
    # average says how much else the machine was running, as timings here vary with it.
    print(
        f"{'via':>8} {'N':>8} {'file MB':>9} {'seconds':>8} {'rows/s':>8} {'peak RSS MB':>12} "
        f"{'CPU s':>7} {'load':>5}"
    )
    for rows in args.sizes:
        for via in vias:
            r = run(rows, args.images, args.folder, keep_files=True, via=via)
            if r["rows"] != rows or r["rejected"]:
                raise SystemExit(f"imported {r['rows']} rows, {r['rejected']} rejected, of {rows}")
            print(
                f"{via:>8} {rows:>8} {r['file_mb']:>9.0f} {r['seconds']:>8.1f} "
                f"{rows / r['seconds']:>8.0f} {r['rss_kb'] / 1024:>12.0f} "
                f"{r['cpu_seconds']:>7.1f} {r['load']:>5.1f}",
                flush=True,
            )
        if not args.keep_files:
            (args.folder / f"bench-{rows}-{args.images}.parquet").unlink()


if __name__ == "__main__":
    main()
