from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from annotation.demo.files import write_demo_dataset


class Command(BaseCommand):
    help = "Write the demo dataset (Pillow images, questions in every domain, several models)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--out", type=Path, required=True, help="folder to write into")
        parser.add_argument("--questions", type=int, default=60)
        parser.add_argument("--seed", type=int, default=0)

    def handle(self, *args: Any, out: Path, questions: int, seed: int, **options: Any) -> None:
        dataset = write_demo_dataset(out=out, questions=questions, seed=seed)
        self.stdout.write(
            f"{dataset.questions} questions, {dataset.responses} responses: "
            f"{dataset.responses_jsonl}\n"
            f"imported pairs: {dataset.train_parquet}\n"
            f"import with: manage.py import_data --format responses-jsonl {dataset.responses_jsonl}"
            f" && manage.py import_data --format spavl-parquet {dataset.train_parquet}"
            f" && manage.py make_pairs"
        )
