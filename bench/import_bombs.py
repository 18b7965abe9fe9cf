"""Import bombs: files that declare far more than they hold, each imported in a fresh subprocess.

Usage: DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \
           .venv/bin/python bench/import_bombs.py [--declared-mb 500 2000] [--cap-mb 6000]

Recreates the database ``spavl_bench_bombs`` (migrate + load_taxonomy), writes each bomb under
``var/bench/bombs`` (parquet written byte by byte and sparse files: a bomb of any declared size
takes a few KB of disk and no memory to write), imports it with ``import_file`` in a child process
and prints that child's peak RSS and the outcome. The goal: every bomb refused (its row rejected,
or the file failed) under 400 MB. Peak RSS is ``ru_maxrss`` from ``os.wait4``, so each child is
measured alone (``getrusage(RUSAGE_CHILDREN)`` would give the largest child so far); the parent
never holds a bomb, so what a child inherits from it before ``exec`` stays below the child's own
figure. ``--cap-mb`` limits each child's address space, to measure older code safely.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from benchdb import recreate_database

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BENCH_DB = "spavl_bench_bombs"
GOAL_MB = 400
HATE = {"class1": "Representation & ToxicityHarms", "class2": "Toxic", "class3": "hate"}
IMPORT_CHILD = """
import json, sys
from pathlib import Path
import django
django.setup()
from annotation.exceptions import ImportFileError
from annotation.services.imports import import_file
path, import_format = Path(sys.argv[1]), sys.argv[2]
try:
    batch = import_file(path=path, import_format=import_format, image_root=path.parent)
except ImportFileError as error:
    print(json.dumps({"failed": str(error)}))
else:
    print(json.dumps({"read": batch.rows_read, "kept": batch.rows_created + batch.rows_existing,
                      "rejected": batch.rows_rejected, "errors": batch.errors[:3]}))
"""


def eval_row(n: int) -> dict[str, str]:
    return {**HATE, "question": f"Question {n}?", "response": f"Answer {n}.", "image": "a.png"}


def sparse(path: Path, *, before: bytes, hole: int, after: bytes) -> Path:
    with path.open("wb") as handle:
        handle.write(before)
        handle.seek(hole, os.SEEK_CUR)
        handle.write(after)
    return path


def parquet_bomb(declared: int, *, honest_footer: bool = True) -> Callable[[Path], Path]:
    from tests.factories import image_bytes, write_parquet_bomb

    def write(path: Path) -> Path:
        good: list[dict[str, object]] = [
            {"image": image_bytes(seed=n), "question": f"Question {n}?"} for n in (1, 3)
        ]
        groups = [[good[0]], [{"image": declared, "question": "Bomb?"}], [good[1]]]
        return write_parquet_bomb(path=path, row_groups=groups, honest_footer=honest_footer)

    return write


def parquet_rows_bomb(declared: int, rows: int) -> Callable[[Path], Path]:
    from tests.factories import write_parquet_bomb

    def write(path: Path) -> Path:
        group = [{"image": declared, "question": f"Bomb {n}?"} for n in range(rows)]
        return write_parquet_bomb(path=path, row_groups=[group])

    return write


def parquet_dictionary_bomb(value: int, rows: int) -> Callable[[Path], Path]:
    from tests.factories import write_parquet_bomb

    def write(path: Path) -> Path:
        group = [{"image": value, "question": f"Bomb {n}?"} for n in range(rows)]
        return write_parquet_bomb(path=path, row_groups=[group], dictionary=True)

    return write


def json_row_bomb(declared: int) -> Callable[[Path], Path]:
    def write(path: Path) -> Path:
        before = f'[{json.dumps(eval_row(1))}, {{"question": "'.encode()
        return sparse(
            path, before=before, hole=declared, after=f'"}}, {json.dumps(eval_row(3))}]'.encode()
        )

    return write


def zeros_bomb(declared: int) -> Callable[[Path], Path]:
    return lambda path: sparse(path, before=b"", hole=declared, after=b"\0")


def deep_bomb(depth: int) -> Callable[[Path], Path]:
    def write(path: Path) -> Path:
        deep = b"[" * depth + b"]" * depth
        path.write_bytes(b"[" + json.dumps(eval_row(1)).encode() + b", " + deep + b"]")
        return path

    return write


def jsonl_line_bomb(declared: int) -> Callable[[Path], Path]:
    def write(path: Path) -> Path:
        first = json.dumps({**eval_row(1), "model": "m"}).encode() + b'\n{"question": "'
        last = b'"}\n' + json.dumps({**eval_row(3), "model": "m"}).encode() + b"\n"
        return sparse(path, before=first, hole=declared, after=last)

    return write


def bombs(declared_mb: list[int]) -> list[tuple[str, str, int, Callable[[Path], Path]]]:
    """(name, import format, declared bytes, writer) of every bomb."""
    from django.conf import settings

    found: list[tuple[str, str, int, Callable[[Path], Path]]] = []
    for mb in declared_mb:
        size = mb * 1_000_000
        found += [
            (f"parquet image {mb} MB", "spavl-parquet", size, parquet_bomb(size)),
            (
                f"parquet image {mb} MB, lying footer",
                "spavl-parquet",
                size,
                parquet_bomb(size, honest_footer=False),
            ),
            (
                f"parquet dictionary 20 MB x {mb // 20} rows",
                "spavl-parquet",
                size,
                parquet_dictionary_bomb(20 << 20, mb // 20),
            ),
            (f"json row {mb} MB (sparse)", "eval-json", size, json_row_bomb(size)),
            (f"json zeros {mb} MB (sparse)", "eval-json", size, zeros_bomb(size)),
            (f"jsonl line {mb} MB (sparse)", "responses-jsonl", size, jsonl_line_bomb(size)),
        ]
    smallest = min(declared_mb) * 1_000_000
    # The largest image a page may hold and still be read: the worst case that is decompressed.
    under = settings.IMPORT_PAGE_MAX_BYTES - 1024
    found += [
        (
            f"parquet image {under / 1e6:.0f} MB (under page limit)",
            "spavl-parquet",
            under,
            parquet_bomb(under),
        ),
        (
            f"parquet 100 rows x {smallest // 1_000_000} MB",
            "spavl-parquet",
            100 * smallest,
            parquet_rows_bomb(smallest, 100),
        ),
        ("json nested 10M deep", "eval-json", 20_000_000, deep_bomb(10_000_000)),
    ]
    return found


def bench_env() -> dict[str, str]:
    env = {**os.environ, "DATABASE_URL": recreate_database(BENCH_DB)}
    env.setdefault("DJANGO_SETTINGS_MODULE", "spavl_web.settings")
    env["DEBUG"] = "0"
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


def run_child(
    path: Path, import_format: str, env: dict[str, str], *, cap_mb: int | None, timeout: float
) -> tuple[float, float, str]:
    """(seconds, peak RSS MB, outcome) of one import in a fresh process."""

    def limit() -> None:
        if cap_mb:
            resource.setrlimit(resource.RLIMIT_AS, (cap_mb << 20, cap_mb << 20))

    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        child = subprocess.Popen(
            [sys.executable, "-c", IMPORT_CHILD, str(path), import_format],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=err,
            preexec_fn=limit if cap_mb else None,
        )
        timer = threading.Timer(timeout, child.kill)
        timer.start()
        _, status, usage = os.wait4(child.pid, 0)
        timer.cancel()
        child.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        lines = out.read().decode().strip().splitlines()
        if child.returncode != 0 or not lines:
            tail = err.read().decode().strip().splitlines()[-1:] or [f"exit {child.returncode}"]
            return seconds, usage.ru_maxrss / 1024, f"crashed: {tail[0][:150]}"
    return seconds, usage.ru_maxrss / 1024, outcome(json.loads(lines[-1]))


def outcome(result: dict[str, object]) -> str:
    if "failed" in result:
        return f"file failed: {str(result['failed'])[:150]}"
    errors = result["errors"]
    assert isinstance(errors, list)
    first = f"; row {errors[0]['row']}: {errors[0]['reason'][:110]}" if errors else ""
    return f"{result['read']} read, {result['kept']} kept, {result['rejected']} rejected{first}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--declared-mb", nargs="*", type=int, default=[500, 2000])
    parser.add_argument("--folder", type=Path, default=ROOT / "var" / "bench" / "bombs")
    parser.add_argument("--cap-mb", type=int, help="address-space limit of each child (MB)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per import")
    parser.add_argument("--only", help="run the bombs whose name contains this")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "spavl_web.settings")
    import django

    django.setup()
    from tests.factories import image_bytes

    args.folder.mkdir(parents=True, exist_ok=True)
    (args.folder / "a.png").write_bytes(image_bytes(seed=1, fmt="PNG"))
    env = bench_env()
    print(f"{'bomb':<40} {'declared MB':>11} {'disk KB':>8} {'s':>6} {'peak RSS MB':>11}  outcome")
    worst = 0.0
    for number, (name, import_format, declared, write) in enumerate(bombs(args.declared_mb)):
        if args.only and args.only not in name:
            continue
        path = write(args.folder / f"bomb-{number}")
        disk_kb = path.stat().st_blocks * 512 / 1024
        seconds, peak, result = run_child(
            path, import_format, env, cap_mb=args.cap_mb, timeout=args.timeout
        )
        path.unlink()
        worst = max(worst, peak)
        print(
            f"{name:<40} {declared / 1e6:>11.0f} {disk_kb:>8.0f} {seconds:>6.1f} {peak:>11.0f}  "
            f"{result}",
            flush=True,
        )
    verdict = "under" if worst < GOAL_MB else "OVER"
    print(f"worst peak RSS {worst:.0f} MB: {verdict} the {GOAL_MB} MB goal")


if __name__ == "__main__":
    main()
