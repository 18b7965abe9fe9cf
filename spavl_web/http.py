"""The request our views receive, typed once.

``LoginRequiredMiddleware`` guarantees a signed-in ``user`` on every view that is not marked
``login_not_required``, and ``django_htmx``'s middleware sets ``htmx``; views annotate their
request with this class instead of narrowing ``request.user`` or ignoring ``request.htmx``.
"""

from __future__ import annotations

from django.contrib.auth.models import User
from django.http import HttpRequest
from django_htmx.middleware import HtmxDetails


class Request(HttpRequest):
    user: User  # type: ignore[assignment]  # narrower than HttpRequest's User | AnonymousUser
    htmx: HtmxDetails
