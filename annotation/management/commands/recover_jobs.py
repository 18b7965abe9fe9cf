"""Run the recovery sweep once, or check that Celery beat runs it (the beat health check)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from annotation.services.recovery import last_sweep_at, recover_stalled_jobs


class Command(BaseCommand):
    help = (
        "Resend export jobs, judge batches and imports whose worker died or whose message was "
        "lost, and fail those out of attempts. With --check-age, only check that a sweep ran "
        "in the last SECONDS (exit 1 otherwise)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--check-age", type=float, metavar="SECONDS")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["check_age"] is not None:
            return self._check(max_age=options["check_age"])
        report = recover_stalled_jobs()
        self.stdout.write(str(report) if report else "nothing to recover")

    def _check(self, *, max_age: float) -> None:
        last = last_sweep_at()
        if last is None:
            raise CommandError("no recovery sweep has run yet")
        age = (timezone.now() - last).total_seconds()
        if age > max_age:
            raise CommandError(f"the last recovery sweep ran {age:.0f} s ago (limit {max_age:g})")
        self.stdout.write(f"last recovery sweep {age:.0f} s ago")
