from __future__ import annotations

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from spavl_web import roles


def navigation(request: HttpRequest) -> dict[str, object]:
    """What the top bar may link to, by role. Lazy: a page that never renders the bar pays
    nothing."""
    user = request.user
    return {
        "can_adjudicate": SimpleLazyObject(lambda: roles.is_adjudicator(user)),
        "can_read_agreement": SimpleLazyObject(lambda: roles.is_analyst(user)),
        "can_watch_judge": SimpleLazyObject(lambda: roles.is_judge_watcher(user)),
        "can_export": SimpleLazyObject(lambda: roles.is_exporter(user)),
    }
