"""People's rewrites: a safe response a reviewer wrote for a pair both of whose responses they
judged unsafe, and the new pair it makes (the rewrite chosen, the less bad response rejected).
The workflow is in ``annotation.services.rewrites``."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from annotation.models.dataset import Pair, Response
from annotation.models.review import Review

__all__ = ["Rewrite", "RewriteQuerySet", "RewriteStatus", "MAX_REWRITE_CHARS"]

MAX_REWRITE_CHARS = 10_000


class RewriteStatus(models.TextChoices):
    PENDING = "pending", "waiting for an adjudicator"
    ACCEPTED = "accepted", "accepted"
    REJECTED = "rejected", "rejected"


class RewriteQuerySet(models.QuerySet["Rewrite"]):
    def pending(self) -> RewriteQuerySet:
        return self.filter(status=RewriteStatus.PENDING)


class Rewrite(models.Model):
    """One review's rewrite (at most one per review) and its adjudicator's decision."""

    review = models.OneToOneField(Review, on_delete=models.CASCADE, related_name="rewrite")
    source_pair = models.ForeignKey(Pair, on_delete=models.CASCADE, related_name="rewrites")
    # The new pair (its response A is the rewrite) and the response holding the text; an
    # edit repoints both the pair and this row at a new response (response text is immutable).
    new_pair = models.OneToOneField(Pair, on_delete=models.PROTECT, related_name="rewrite_of")
    response = models.ForeignKey(Response, on_delete=models.PROTECT, related_name="+")
    status = models.CharField(
        max_length=16, choices=RewriteStatus.choices, default=RewriteStatus.PENDING
    )
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    reason = models.TextField(blank=True, max_length=2000)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    objects = RewriteQuerySet.as_manager()

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=RewriteStatus.values), name="rewrite_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(status="pending", decided_at__isnull=True)
                | (~Q(status="pending") & Q(decided_at__isnull=False)),
                name="rewrite_decided_has_time",
            ),
            models.CheckConstraint(
                condition=~Q(status="rejected") | ~Q(reason=""), name="rewrite_rejected_has_reason"
            ),
        ]
        indexes = [
            models.Index(
                fields=["created_at"], condition=Q(status="pending"), name="rewrite_pending_queue"
            ),
        ]

    def __str__(self) -> str:
        return f"rewrite of pair {self.source_pair_id} ({self.status})"
