from __future__ import annotations

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from annotation.access import is_adjudicator


def navigation(request: HttpRequest) -> dict[str, object]:
    """What the top bar may link to. Lazy: a page that never renders the bar pays nothing."""
    return {"can_adjudicate": SimpleLazyObject(lambda: is_adjudicator(request.user))}
