"""Access gates: one per object type. Missing and not-yours both answer 404."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.http import Http404

from annotation.models import Image

AnyUser = AbstractBaseUser | AnonymousUser


def access_image(*, user: AnyUser, image_id: int) -> Image:
    """Images are visible to every signed-in member of the team (reviewers see harmful content
    by role); the gate exists so later tenant or campaign scoping has one place to live."""
    if not user.is_authenticated:
        raise Http404
    try:
        return Image.objects.only("data", "format").get(pk=image_id)
    except Image.DoesNotExist:
        raise Http404 from None
