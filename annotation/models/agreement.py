"""Write counters behind the agreement dashboard's cache key
(annotation/services/agreement/cache.py)."""

from __future__ import annotations

from django.db import models

__all__ = ["DataVersion"]


class DataVersion(models.Model):
    """64 counters, bumped by PostgreSQL triggers (migrations 0010 and 0011) by every statement
    that writes a table the dashboard reads. A statement bumps a slot no other transaction
    holds (SKIP LOCKED, its backend's own first), so writers never wait on each other here and
    cannot deadlock through it. A slot starts at a random value, so the sum over slots, the
    cache's data version, never comes back to an earlier value, even after the table is
    emptied. Nothing in Python writes it."""

    slot = models.SmallIntegerField(primary_key=True)
    version = models.BigIntegerField()

    class Meta:
        # The agreement dashboard's own permission (spavl_web.roles: analyst); it lives here,
        # with the dashboard's one model.
        permissions = [("view_agreement", "Can read the agreement dashboard")]

    def __str__(self) -> str:
        return f"slot {self.slot}: {self.version}"
