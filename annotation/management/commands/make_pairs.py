from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from annotation.models import QuestionType
from annotation.services.pairs import make_pairs


class Command(BaseCommand):
    help = "Sample pairs of responses from different models per question (seeded, reproducible)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument(
            "--per-question", type=int, default=1, help="sampled pairs per question"
        )
        parser.add_argument("--question-type", choices=QuestionType.values)

    def handle(self, *args: Any, **options: Any) -> None:
        result = make_pairs(
            seed=options["seed"],
            per_question=options["per_question"],
            question_type=options["question_type"],
        )
        self.stdout.write(f"{result.created} pairs sampled over {result.questions} questions")
