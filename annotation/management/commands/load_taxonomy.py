from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation.exceptions import TaxonomyError
from annotation.services.taxonomy import SPAVL_TAXONOMY_FILE, load_taxonomy


class Command(BaseCommand):
    help = "Load the SPA-VL harm taxonomy (6 domains, 15 categories, 53 subcategories)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--file", type=Path, default=SPAVL_TAXONOMY_FILE)

    def handle(self, *args: Any, file: Path, **options: Any) -> None:
        try:
            result = load_taxonomy(path=file)
        except TaxonomyError as error:
            raise CommandError(str(error)) from error
        self.stdout.write(
            f"taxonomy: {result.created} nodes created, {result.existing} already present, "
            f"version {result.version}"
        )
