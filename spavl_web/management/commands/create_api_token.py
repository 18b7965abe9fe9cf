"""manage.py create_api_token USERNAME --name NAME --scopes read,export [--days 30]"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandError, CommandParser

from spavl_web.models import Scope
from spavl_web.tokens import TokenError, create_token


class Command(BaseCommand):
    help = (
        "Make an API token for a user and print its secret once (only its hash is kept). "
        f"Scopes: {', '.join(Scope.values)}."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", required=True, help="what the token is for")
        parser.add_argument("--scopes", required=True, help="comma-separated, e.g. read,export")
        parser.add_argument("--days", type=int, default=None, help="lifetime (default 30)")

    def handle(self, *args: Any, **options: Any) -> None:
        user = User.objects.filter(username=options["username"], is_active=True).first()
        if user is None:
            raise CommandError(f"no active user {options['username']!r}")
        scopes = [scope.strip() for scope in options["scopes"].split(",") if scope.strip()]
        try:
            token, secret = create_token(
                user=user, name=options["name"], scopes=scopes, days=options["days"]
            )
        except TokenError as error:
            raise CommandError(str(error)) from None
        self.stderr.write(
            f"Token {token.token_key}… for {user.get_username()} ({', '.join(token.scopes)}), "
            f"expires {token.expiry:%Y-%m-%d %H:%M} UTC. The secret, shown only now:"
        )
        self.stdout.write(secret)
