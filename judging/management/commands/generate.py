"""`manage.py generate`: the first two stages of SPA-VL on the GPU workers' machinery.

``generate responses`` starts a generation run (models answer questions, on the `generate` queue;
this process loads no model) and, with --wait, follows it with a progress bar.
``generate questions`` has a model write questions for images and subcategories, in this
process: run it where the GPU is (e.g. ``docker compose run generate-worker python manage.py
generate questions ...``).
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from annotation.exceptions import DomainError
from annotation.models import ImportStatus, QuestionType
from judging.engine.generation_types import SamplingSettings
from judging.models import GenerationRun, QuestionSelection, RunStatus
from judging.services import ModelRequest, start_generation_run

POLL_SECONDS = 1.0
QUESTION_TYPES = [t for t in QuestionType.values if t != QuestionType.UNKNOWN]


def _ids(text: str) -> list[int]:
    try:
        ids = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated ids, got {text!r}") from None
    if not ids or min(ids) < 1:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive ids, got {text!r}")
    return ids


def _types(text: str) -> list[str]:
    types = [part.strip() for part in text.split(",") if part.strip()]
    unknown = sorted(set(types) - set(QUESTION_TYPES))
    if not types or unknown:
        raise argparse.ArgumentTypeError(
            f"question types are a comma-separated subset of {','.join(QUESTION_TYPES)}"
        )
    return types


def _add_sampling(parser: CommandParser, *, max_new_tokens: int) -> None:
    parser.add_argument("--max-new-tokens", type=int, default=max_new_tokens)
    parser.add_argument(
        "--temperature", type=float, default=0.0, help="0 (the default) decodes greedily."
    )
    parser.add_argument("--top-p", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dtype", help="Model dtype the workers load, e.g. bfloat16.")


def _sampling(options: dict[str, Any]) -> SamplingSettings:
    return SamplingSettings(
        max_new_tokens=options["max_new_tokens"],
        temperature=options["temperature"],
        top_p=options["top_p"],
        seed=options["seed"],
    )


class Command(BaseCommand):
    help = "Generate responses (on the generate workers) or questions (here) with local VLMs."

    def add_arguments(self, parser: CommandParser) -> None:
        stages = parser.add_subparsers(dest="stage", required=True, parser_class=CommandParser)
        responses = stages.add_parser(
            "responses", help="Models answer the questions (a generation run on the workers)."
        )
        responses.add_argument(
            "--model",
            action="append",
            required=True,
            help="Hub id or local path, optionally ID@REVISION; repeat for several models.",
        )
        responses.add_argument(
            "--questions",
            choices=QuestionSelection.values,
            default=QuestionSelection.MISSING,
            help="missing (default): only questions without a response from that model.",
        )
        responses.add_argument(
            "--taxonomy", type=_ids, default=[], help="Taxonomy node ids (any level)."
        )
        responses.add_argument("--question-type", type=_types, default=[], help="e.g. easy,hardq.")
        responses.add_argument("--import-batch", type=int, help="Questions of one import.")
        responses.add_argument("--samples", type=int, default=1, help="Per model and question.")
        responses.add_argument("--batch-size", type=int, help="Questions per worker task.")
        _add_sampling(responses, max_new_tokens=256)
        responses.add_argument("--wait", action="store_true", help="Follow the run until it ends.")

        questions = stages.add_parser(
            "questions", help="A model writes questions per image and subcategory (here)."
        )
        questions.add_argument("--model", required=True, help="Hub id, local path or baseline.")
        questions.add_argument("--revision", default="", help="Hub revision (default: latest).")
        questions.add_argument("--images", type=_ids, help="Image ids (default: all).")
        questions.add_argument(
            "--subcategories", type=_ids, help="Subcategory node ids (default: all live)."
        )
        questions.add_argument(
            "--types", type=_types, default=QUESTION_TYPES, help="Default: easy,hardq,hards."
        )
        _add_sampling(questions, max_new_tokens=96)

    def handle(self, *args: Any, **options: Any) -> None:
        if options["stage"] == "responses":
            self._responses(options)
        else:
            self._questions(options)

    def _responses(self, options: dict[str, Any]) -> None:
        try:
            run = start_generation_run(
                models=[ModelRequest.parse(text) for text in options["model"]],
                questions=options["questions"],
                taxonomy_node_ids=options["taxonomy"],
                question_types=options["question_type"],
                import_batch_id=options["import_batch"],
                samples=options["samples"],
                sampling=_sampling(options),
                dtype=options["dtype"],
                batch_size=options["batch_size"],
            )
        except DomainError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            f"Generation run {run.pk}: {run.total} responses to generate "
            f"({run.models_description}, {run.samples} per question)"
        )
        if options["wait"]:
            run = self._follow(run)
        self._summary(run)

    def _follow(self, run: GenerationRun) -> GenerationRun:
        # tqdm redraws with "\r"; Django's OutputWrapper would end every redraw with a newline.
        stream = getattr(self.stderr, "_out", sys.stderr)
        with tqdm(total=run.total, unit="response", file=stream, disable=None) as bar:
            while True:
                run.refresh_from_db()
                bar.update(run.processed - bar.n)
                if not run.is_active:
                    return run
                time.sleep(POLL_SECONDS)

    def _summary(self, run: GenerationRun) -> None:
        if run.is_active:
            self.stdout.write(
                f"Queued for the generate workers. Follow it at /judging/generation/{run.pk}/"
            )
            return
        if run.status == RunStatus.FAILED:
            raise CommandError(f"Generation run {run.pk} failed: {run.error}")
        speed, tokens = run.throughput
        rate = f", {speed:.2f} responses/s, {tokens:.0f} tokens/s" if speed and tokens else ""
        truncated = f"{run.share_truncated:.0%}" if run.share_truncated is not None else "-"
        self.stdout.write(
            f"Generation run {run.pk} {run.status}: {run.created} created, {run.existing} "
            f"already stored, {run.duplicates} duplicate texts, {run.failed} failed{rate}; "
            f"truncated {truncated}. Pair them with: python manage.py make_pairs"
        )

    def _questions(self, options: dict[str, Any]) -> None:
        from judging.services.question_generation import write_questions

        stream = getattr(self.stderr, "_out", sys.stderr)
        with tqdm(unit="question", file=stream, disable=None) as bar:

            def progress(done: int, total: int) -> None:
                bar.total = total
                bar.update(done - bar.n)

            try:
                batch = write_questions(
                    model=options["model"],
                    revision=options["revision"],
                    image_ids=options["images"],
                    subcategory_ids=options["subcategories"],
                    question_types=options["types"],
                    sampling=_sampling(options),
                    dtype=options["dtype"],
                    progress=progress,
                )
            except DomainError as exc:
                raise CommandError(str(exc)) from exc
        if batch.status == ImportStatus.FAILED:
            raise CommandError(f"Question generation {batch.pk} failed: {batch.error_message}")
        self.stdout.write(
            f"Question generation {batch.pk}: {batch.rows_created} questions written, "
            f"{batch.rows_existing} already stored, {batch.rows_rejected} rejected"
            + (f" (reasons: {batch.report_path})" if batch.rows_rejected else "")
            + f". Answer them with: python manage.py generate responses --model ID "
            f"--import-batch {batch.pk}"
        )
