"""API tokens: django-rest-knox's hashed, expiring tokens, with a name and scopes.

Only the SHA-512 digest of a token is stored (knox), with its first characters as an index to
find it by (``token_key``, not enough to use it). The secret is shown once, when the token is
made. A token is refused after ``expiry``; deleting the row revokes it at once.
"""

from __future__ import annotations

from django.db import models
from knox.models import AbstractAuthToken


class Scope(models.TextChoices):
    READ = "read", "read: data, figures and the schema"
    REVIEW = "review", "review: reviews and verdicts"
    IMPORT = "import", "import: push data in"
    EXPORT = "export", "export: start exports and download them"
    JUDGE = "judge", "judge: start and cancel judge runs"
    ADMIN = "admin", "admin: campaigns, taxonomy and everything an admin may do"


class ApiToken(AbstractAuthToken):
    name = models.CharField(
        max_length=100, help_text="What the token is for, e.g. 'nightly export'."
    )
    scopes = models.JSONField(default=list, help_text="What the token may do (Scope values).")
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "API token"
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"{self.name} ({self.token_key}…, {self.user})"
