"""Write counters behind the agreement dashboard's cache key (annotation/agreement/cache.py)."""

from __future__ import annotations

from django.db import models

__all__ = ["DataVersion"]


class DataVersion(models.Model):
    """One counter per slot, bumped by PostgreSQL triggers (migration 0010) by every statement
    that writes a table the dashboard reads; a transaction bumps the slot of its connection
    (backend pid mod 64), so concurrent writers seldom wait on each other's row. A slot starts
    at a random value, so the sum over slots, the cache's data version, never comes back to
    an earlier value, even after the table is emptied. Nothing in Python writes it."""

    slot = models.SmallIntegerField(primary_key=True)
    version = models.BigIntegerField()

    def __str__(self) -> str:
        return f"slot {self.slot}: {self.version}"
