from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from annotation.exceptions import ImportFileError
from annotation.models import ImportBatch, ImportFormat
from annotation.services.imports import import_file, parse_column_map
from annotation.services.imports.hf_parquet import UNKNOWN_TAXONOMY
from annotation.services.imports.rlhf_json import QUESTION_TYPE_NAMES

REJECTIONS_SHOWN = 100


class Command(BaseCommand):
    help = (
        "Import SPA-VL data (parquet shards, RLHF JSON, eval JSON, responses JSONL) or any"
        " preference dataset through a column map (hf-parquet)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", type=Path, help="file, or folder of parquet shards")
        parser.add_argument("--format", required=True, choices=ImportFormat.values)
        parser.add_argument("--image-root", type=Path, help="folder image paths are relative to")
        parser.add_argument("--split", default="", help="spavl-parquet: train, validation, test")
        parser.add_argument("--model", default="", help="eval-json: model name of the responses")
        parser.add_argument(
            "--question-type",
            default="",
            choices=sorted(QUESTION_TYPE_NAMES),
            help="rlhf-json: the rows' question type (default: from the file name, easy_*.json)",
        )
        parser.add_argument(
            "--map",
            default="",
            metavar="KEY=COLUMN,...",
            help="hf-parquet: which column holds what, e.g. image=img,question=prompt,"
            "chosen=chosen,rejected=rejected (docs/import-layouts.md)",
        )
        parser.add_argument(
            "--taxonomy-map",
            type=Path,
            help='hf-parquet: JSON {"their category": "class1/class2/class3"} for category=COLUMN',
        )
        parser.add_argument(
            "--unknown-taxonomy",
            default="reject",
            choices=UNKNOWN_TAXONOMY,
            help="hf-parquet: reject a row whose taxonomy is unknown, or import it unlabelled",
        )
        parser.add_argument("--report", type=Path, help="CSV of rejected rows (default: var/)")
        parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    def handle(self, *args: Any, **options: Any) -> None:
        bar = tqdm(unit="rows", file=self.stderr._out, disable=options["no_progress"])

        def on_start(total: int) -> None:
            bar.reset(total=total or None)

        try:
            column_map = parse_column_map(options["map"]) if options["map"] else None
            batch = import_file(
                path=options["path"],
                import_format=options["format"],
                image_root=options["image_root"],
                split=options["split"],
                model_name=options["model"],
                question_type=options["question_type"],
                column_map=column_map,
                taxonomy_map=options["taxonomy_map"],
                unknown_taxonomy=options["unknown_taxonomy"],
                report_path=options["report"],
                progress=bar.update,
                on_start=on_start,
            )
        except ImportFileError as error:
            raise CommandError(f"import failed, nothing imported: {error}") from error
        finally:
            bar.close()
        self._summarise(batch)

    def _summarise(self, batch: ImportBatch) -> None:
        split = f", split {batch.split}" if batch.split else ""
        self.stdout.write(
            f"import {batch.pk} ({batch.format}{split}): {batch.rows_read} rows read, "
            f"{batch.rows_created} created, {batch.rows_existing} already present, "
            f"{batch.rows_rejected} rejected"
        )
        for error in batch.errors[:REJECTIONS_SHOWN]:
            self.stdout.write(f"  rejected row {error['row']}: {error['reason']}")
        if batch.rows_rejected > REJECTIONS_SHOWN:
            self.stdout.write(f"  ... {batch.rows_rejected - REJECTIONS_SHOWN} more in the report")
        self.stdout.write(f"report: {batch.report_path}")
