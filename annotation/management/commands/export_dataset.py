"""Export the dataset from the command line, with a progress bar.

    python manage.py export_dataset --out DIR [--definition NAME_OR_JSON_FILE]
        [--format spavl-parquet|rlhf-json|dpo-jsonl|safe-rlhf-jsonl] [--resume]

Without --definition it exports every labelled pair (imported pairs count) with the default
split plan (0.8/0.1/0.1, seed 0). --resume continues the last unfinished job writing to DIR.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from annotation.exceptions import DomainError
from annotation.models import ExportFormat, ExportJob, ExportStatus
from annotation.services.export import create_export_job, load_spec, run_export_job


class Command(BaseCommand):
    help = "Export labelled pairs as SPA-VL parquet, SPA-VL-RLHF JSON or DPO JSONL."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--definition", help="A saved definition's name or a JSON file.")
        parser.add_argument(
            "--format", choices=ExportFormat.values, help="Default: the definition's first."
        )
        parser.add_argument("--out", required=True, help="Output directory.")
        parser.add_argument(
            "--resume", action="store_true", help="Continue the last unfinished job in --out."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        out = Path(options["out"]).resolve()
        try:
            job = self._resumable(out) if options["resume"] else None
            if job is None:
                spec, definition = load_spec(name_or_path=options["definition"])
                export_format = options["format"] or spec.formats[0]
                job = create_export_job(
                    spec=spec, export_format=export_format, definition=definition, output_dir=out
                )
            with tqdm(
                unit="pair", desc=f"export {job.pk}", disable=options["verbosity"] == 0
            ) as bar:
                job = run_export_job(job_id=job.pk, on_progress=_updater(bar))
        except DomainError as error:
            raise CommandError(str(error)) from error
        if job.status != ExportStatus.FINISHED:
            raise CommandError(
                f"export {job.pk} is {job.status} in another worker (last heartbeat "
                f"{job.heartbeat_at:%Y-%m-%d %H:%M:%S}); --resume once it has stopped"
            )
        self.stdout.write(f"export {job.pk}: {job.done} pairs, {len(job.files)} files in {out}")

    def _resumable(self, out: Path) -> ExportJob | None:
        return (
            ExportJob.objects.filter(output_dir=str(out))
            .exclude(status=ExportStatus.FINISHED)
            .order_by("-pk")
            .first()
        )


def _updater(bar: tqdm) -> Any:
    def update(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    return update
