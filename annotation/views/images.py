"""Image bytes for the review and adjudication pages, behind the same gate as the pair."""

from __future__ import annotations

from django.http import HttpResponse
from django.views.decorators.http import require_GET

from annotation import access
from spavl_web.http import Request


@require_GET
def image(request: Request, image_id: int) -> HttpResponse:
    """Serve an image's original bytes with a Content-Type from its validated format."""
    picture = access.access_image(user=request.user, image_id=image_id)
    response = HttpResponse(bytes(picture.data), content_type=picture.content_type)
    response["Cache-Control"] = "private, max-age=86400, immutable"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response
