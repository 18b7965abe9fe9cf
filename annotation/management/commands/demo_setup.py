"""Everything `make demo` needs after migrate: taxonomy, accounts, demo data judged and queued."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group, User
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

from annotation.demo.reviews import SimulatedCampaign, seed_simulated_campaign
from annotation.models import Campaign, ExportDefinition, Pair
from annotation.services.campaigns import CampaignRules, create_campaign
from judging.models import JudgeRun

DEMO_CAMPAIGN = "Demo review"
ACCOUNTS = {"admin": "admin", "reviewer": "reviewer", "adjudicator": "adjudicator"}


class Command(BaseCommand):
    help = (
        "Set up the embedded demo: taxonomy, demo accounts, demo data, a baseline judge run, "
        "a finished campaign of simulated reviews and an open one for you."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--seed", type=int, default=0, help="seed of the simulated reviews (first setup only)"
        )

    def handle(self, *args: Any, seed: int, **options: Any) -> None:
        call_command("load_taxonomy", stdout=self.stdout)
        credentials = self._accounts()
        if not Pair.objects.exists():
            self._data()
        self._review_campaign(reviewers=["reviewer", "adjudicator"])
        self._report(
            seed_simulated_campaign(
                created_by=User.objects.get(username="admin"),
                adjudicator=User.objects.get(username="adjudicator"),
                judge_run=JudgeRun.objects.order_by("pk").last(),
                seed=seed,
            )
        )
        self._export_definitions()
        self.stdout.write(self.style.SUCCESS("\nDemo ready. Log in at http://127.0.0.1:8000/"))
        for username, password in credentials.items():
            self.stdout.write(f"  {username:<12} password: {password}")

    def _accounts(self) -> dict[str, str]:
        """Random passwords, kept in var/ so a second `make demo` prints the same ones."""
        path = Path(settings.VAR_DIR) / "demo-credentials.json"
        stored: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
        for username, group in ACCOUNTS.items():
            password = stored.setdefault(username, secrets.token_urlsafe(9))
            user, created = User.objects.get_or_create(username=username)
            if created or not user.check_password(password):
                user.set_password(password)
                user.is_staff = user.is_superuser = username == "admin"
                user.save()
            if group_row := Group.objects.filter(name=group).first():
                user.groups.add(group_row)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(stored, indent=2))
        path.chmod(0o600)
        return stored

    def _data(self) -> None:
        out = Path(settings.VAR_DIR) / "demo-data"
        call_command("make_demo_data", "--out", str(out), stdout=self.stdout)
        for fmt, name in [
            ("responses-jsonl", "responses.jsonl"),
            ("spavl-parquet", "spavl_train.parquet"),
        ]:
            path = str(out / name)
            call_command(
                "import_data",
                "--format",
                fmt,
                path,
                "--image-root",
                str(out),
                "--no-progress",
                stdout=self.stdout,
            )
        call_command("make_pairs", "--seed", "0", stdout=self.stdout)
        call_command(
            "judge", "--backend", "baseline", "--pairs", "unjudged", "--wait", stdout=self.stdout
        )
        # A finished generation run for the generation page: a torch-free stand-in answers the
        # hard statements (its responses are not paired, so the review data stays as it was).
        call_command(
            "generate",
            "responses",
            "--model",
            "baseline:terse",
            "--question-type",
            "hards",
            "--wait",
            stdout=self.stdout,
        )

    def _export_definitions(self) -> None:
        admin = User.objects.get(username="admin")
        ExportDefinition.objects.get_or_create(
            name="Demo: every labelled pair",
            defaults={
                "description": "Imported, judge-only and people-decided pairs; 80/10/10 split.",
                "created_by": admin,
            },
        )
        ExportDefinition.objects.get_or_create(
            name="Demo: people-confirmed pairs",
            defaults={
                "description": "Pairs people confirmed, flipped or adjudicated; 80/10/10 split.",
                "final_labels": ["confirmed", "flipped", "adjudicated"],
                "created_by": admin,
            },
        )

    def _report(self, simulated: SimulatedCampaign) -> None:
        done = "created" if simulated.created else "already there"
        gold = f"pair {simulated.gold.pair_id}" if simulated.gold else "none"
        self.stdout.write(
            f"simulated campaign {simulated.campaign.name!r} ({done}): {simulated.reviews} reviews"
            f" by simulated-1, simulated-2 and simulated-3; {simulated.decided} adjudicated,"
            f" {simulated.waiting} waiting for adjudication; gold pair: {gold}"
        )

    def _review_campaign(self, *, reviewers: list[str]) -> None:
        """One campaign over every pair, two reviews per pair so agreement has something to
        measure; created once."""
        if Campaign.objects.filter(name=DEMO_CAMPAIGN).exists():
            return
        campaign = create_campaign(
            name=DEMO_CAMPAIGN,
            created_by=User.objects.get(username="admin"),
            reviewers=User.objects.filter(username__in=reviewers),
            judge_run=JudgeRun.objects.order_by("pk").last(),
            rules=CampaignRules(overlap=2),
            seed=0,
        )
        self.stdout.write(f"review campaign {campaign.name!r}: {campaign.pairs.count()} pairs")
