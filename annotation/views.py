from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from annotation.access import access_image
from annotation.models import ImportBatch, Pair, Question, TaxonomyChange


@require_GET
def image(request: HttpRequest, image_id: int) -> HttpResponse:
    """Serve an image's original bytes with a Content-Type from its validated format."""
    picture = access_image(user=request.user, image_id=image_id)
    response = HttpResponse(bytes(picture.data), content_type=picture.content_type)
    response["Cache-Control"] = "private, max-age=86400, immutable"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    context = {
        "questions": Question.objects.count(),
        "pairs": Pair.objects.count(),
        "taxonomy_version": TaxonomyChange.current_version(),
        "imports": ImportBatch.objects.all()[:5],
    }
    return render(request, "annotation/home.html", context)
