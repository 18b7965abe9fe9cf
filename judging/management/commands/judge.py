"""`manage.py judge`: start a judge run and, with --wait, follow it with a progress bar."""

from __future__ import annotations

import sys
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from annotation.exceptions import DomainError
from judging.models import JudgeBackend, JudgeRun, RunStatus
from judging.services import PAIR_SELECTIONS, start_run

POLL_SECONDS = 1.0


class Command(BaseCommand):
    help = "Judge pairs with the baseline heuristics or a vision-language model (on the workers)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--backend", choices=JudgeBackend.values, required=True)
        parser.add_argument("--model", help="Hub id or local path (transformers backend).")
        parser.add_argument("--pairs", choices=PAIR_SELECTIONS, default="unjudged")
        parser.add_argument("--batch-size", type=int, help="Pairs per worker task.")
        parser.add_argument("--dtype", help="Model dtype the workers load, e.g. bfloat16.")
        parser.add_argument("--revision", help="Hub revision of the model (default: latest).")
        parser.add_argument("--guard-model", help="A separate safety model (hub id or path).")
        parser.add_argument("--wait", action="store_true", help="Follow the run until it ends.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            run = start_run(
                backend=options["backend"],
                model=options["model"],
                pairs=options["pairs"],
                batch_size=options["batch_size"],
                dtype=options["dtype"],
                revision=options["revision"],
                guard_model=options["guard_model"],
            )
        except DomainError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"Judge run {run.pk}: {run.total} pairs, {run.judge_description}")
        if options["wait"]:
            run = self._follow(run)
        self._summary(run)

    def _follow(self, run: JudgeRun) -> JudgeRun:
        # tqdm redraws with "\r"; Django's OutputWrapper would end every redraw with a newline.
        stream = getattr(self.stderr, "_out", sys.stderr)
        with tqdm(total=run.total, unit="pair", file=stream, disable=None) as bar:
            while True:
                run.refresh_from_db()
                bar.update(run.processed - bar.n)
                if not run.is_active:
                    return run
                time.sleep(POLL_SECONDS)

    def _summary(self, run: JudgeRun) -> None:
        if run.is_active:
            self.stdout.write(f"Queued for the judge workers. Follow it at /judging/runs/{run.pk}/")
            return
        if run.status == RunStatus.FAILED:
            raise CommandError(f"Run {run.pk} failed: {run.error}")
        speed = f", {run.pairs_per_second:.1f} pairs/s" if run.pairs_per_second else ""
        share = f"{run.share_preferring_a:.0%}" if run.share_preferring_a is not None else "-"
        self.stdout.write(
            f"Run {run.pk} {run.status}: {run.done} judged, {run.failed} failed{speed}; "
            f"prefers A {share}, needs review {run.needs_review_count}, "
            f"decided by safety {run.decided_by_safety_count}"
        )
