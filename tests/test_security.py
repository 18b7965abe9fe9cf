"""Hostile users: throttled logins, scoped hashed tokens, forwarded headers from strangers, the
Content-Security-Policy, and the startup check for DEBUG on a public host."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from axes.models import AccessAttempt
from django.contrib.auth.models import Group, Permission, User
from django.core.checks import run_checks
from django.core.management import call_command
from django.db import connection
from django.test import Client, RequestFactory, override_settings
from django.utils import timezone

from spavl_web.models import ApiToken
from spavl_web.proxy import TrustedProxyMiddleware
from spavl_web.tokens import TokenError, create_token

pytestmark = pytest.mark.django_db

LOGIN = "/accounts/login/"


def _login(client: Client, password: str, *, username: str = "rita", address: str = "10.0.0.7"):
    return client.post(LOGIN, {"username": username, "password": password}, REMOTE_ADDR=address)


# Logins ---------------------------------------------------------------------------------------


def test_the_sixth_try_after_five_wrong_passwords_is_refused_even_when_right(reviewer, settings):
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert _login(client, "wrong").status_code == 200  # the form again, with its error
    assert _login(client, "wrong").status_code == 429  # the limit-th failure locks
    locked = _login(client, "rita-password-1")
    assert locked.status_code == 429
    page = locked.content.decode()
    assert "Too many failed logins" in page and "0:15:00" in page
    assert "_auth_user_id" not in client.session


def test_a_lockout_is_per_user_and_address(reviewer, other_reviewer, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        _login(Client(), "wrong")
    elsewhere = _login(Client(), "rita-password-1", address="10.0.0.8")
    colleague = _login(Client(), "otto-password-1", username="otto")
    assert elsewhere.status_code == 302 and colleague.status_code == 302


def test_an_admin_unlocks_a_locked_user(reviewer, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        _login(Client(), "wrong")
    assert _login(Client(), "rita-password-1").status_code == 429
    call_command("axes_reset_username", "rita", stdout=StringIO())
    assert _login(Client(), "rita-password-1").status_code == 302


def test_the_lockout_ends_after_the_cool_off(reviewer, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        _login(Client(), "wrong")
    past = timezone.now() - settings.AXES_COOLOFF_TIME - timedelta(seconds=1)
    AccessAttempt.objects.update(attempt_time=past)
    assert _login(Client(), "rita-password-1").status_code == 302


def test_the_admin_login_is_throttled_too(staff_admin, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        Client().post("/admin/login/", {"username": "ada", "password": "x"}, REMOTE_ADDR="10.1.1.1")
    right = Client().post(
        "/admin/login/", {"username": "ada", "password": "ada-password-1"}, REMOTE_ADDR="10.1.1.1"
    )
    assert right.status_code == 429


# Tokens ---------------------------------------------------------------------------------------


@pytest.fixture
def exporter(db) -> User:
    user = User.objects.create_user("exporter")
    user.user_permissions.add(Permission.objects.get(codename="run_export"))
    return user


def test_a_token_is_stored_as_a_hash_and_its_secret_shown_once(exporter, staff_admin):
    token, secret = create_token(user=exporter, name="nightly", scopes=["export"])
    assert secret.startswith("spavl_") and len(secret) > 60
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM spavl_web_apitoken")
        stored = " ".join(str(value) for value in cursor.fetchone())
    assert secret not in stored and secret[15:] not in stored
    admin = Client()
    admin.force_login(staff_admin)
    listing = admin.get("/admin/spavl_web/apitoken/").content.decode()
    detail = admin.get(f"/admin/spavl_web/apitoken/{token.pk}/change/").content.decode()
    # The admin names a token by its digest (its primary key, in URLs): a SHA-512 hash that
    # cannot be turned back into the secret. The secret itself appears nowhere.
    for page in (listing, detail):
        assert "nightly" in page and token.token_key in page
        assert secret not in page and secret[len(token.token_key) :] not in page
    listed = _token_client(secret).get("/api/v1/tokens/").json()
    assert [entry["name"] for entry in listed] == ["nightly"] and "token" not in listed[0]


def _token_client(secret: str) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Token {secret}")


def test_a_token_does_what_its_scopes_say_and_no_more(exporter, staff_admin):
    _, reader = create_token(user=staff_admin, name="read only", scopes=["read"])
    _, exports = create_token(user=exporter, name="exports", scopes=["export"])
    assert _token_client(reader).get("/api/v1/agreement/").status_code == 200
    refused = _token_client(reader).post(
        "/api/v1/exports/", {"definition": "x"}, content_type="application/json"
    )
    assert refused.status_code == 403 and "'export' scope" in refused.json()["detail"]
    assert _token_client(exports).get("/api/v1/exports/999/").status_code == 404  # reached
    # The scope does not lift the role: this exporter is no analyst.
    assert _token_client(exports).get("/api/v1/agreement/").status_code == 403


def test_a_token_never_has_more_than_its_user(reviewer):
    for scope in ("export", "judge", "import", "admin"):
        with pytest.raises(TokenError, match="may not use"):
            create_token(user=reviewer, name="too much", scopes=[scope])
    token, secret = create_token(user=reviewer, name="mine", scopes=["read"])
    assert _token_client(secret).get("/api/v1/exports/1/").status_code == 403
    # Roles are read on every request: a group taken away takes the token's power with it.
    admin_group, _ = Group.objects.get_or_create(name="admin")
    reviewer.groups.add(admin_group)
    reviewer = User.objects.get(pk=reviewer.pk)  # roles are read once per request's user
    _, admin_secret = create_token(user=reviewer, name="admin", scopes=["admin"])
    reviewer.groups.remove(admin_group)
    assert _token_client(admin_secret).get("/api/v1/exports/1/").status_code == 404


def test_an_expired_or_revoked_token_is_refused(exporter):
    expired, old = create_token(user=exporter, name="old", scopes=["export"], days=1)
    ApiToken.objects.filter(pk=expired.pk).update(expiry=timezone.now() - timedelta(seconds=1))
    assert _token_client(old).get("/api/v1/tokens/").status_code == 401
    assert not ApiToken.objects.filter(pk=expired.pk).exists()  # knox deletes it
    revoked, secret = create_token(user=exporter, name="revoked", scopes=["export"])
    assert _token_client(secret).delete(f"/api/v1/tokens/{revoked.token_key}/").status_code == 204
    assert _token_client(secret).get("/api/v1/tokens/").status_code == 401


def test_tokens_are_made_from_a_session_with_a_lifetime_within_bounds(exporter, settings):
    session = Client()
    session.force_login(exporter)
    made = session.post(
        "/api/v1/tokens/",
        {"name": "pipeline", "scopes": ["export"], "days": 7},
        content_type="application/json",
    )
    assert made.status_code == 201
    secret = made.json()["token"]
    assert _token_client(secret).get("/api/v1/tokens/").status_code == 200
    by_token = _token_client(secret).post(
        "/api/v1/tokens/", {"name": "x", "scopes": ["export"]}, content_type="application/json"
    )
    assert by_token.status_code == 403
    too_long = session.post(
        "/api/v1/tokens/",
        {"name": "forever", "scopes": ["read"], "days": settings.TOKEN_MAX_TTL_DAYS + 1},
        content_type="application/json",
    )
    assert too_long.status_code == 400 and "days" in too_long.json()["detail"]


def test_the_command_prints_the_secret_once(exporter):
    out, err = StringIO(), StringIO()
    call_command(
        "create_api_token",
        "exporter",
        "--name",
        "cli",
        "--scopes",
        "export",
        stdout=out,
        stderr=err,
    )
    secret = out.getvalue().strip()
    assert _token_client(secret).get("/api/v1/tokens/").status_code == 200
    assert secret not in err.getvalue() and "expires" in err.getvalue()


# Forwarded headers ----------------------------------------------------------------------------


def _through_proxy_middleware(**meta: str):
    seen = {}

    def view(request):
        seen["secure"] = request.is_secure()
        seen["address"] = request.META["REMOTE_ADDR"]
        return None

    request = RequestFactory().get("/")
    request.META.update(meta)
    TrustedProxyMiddleware(view)(request)
    return seen


@override_settings(SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https"))
def test_forwarded_headers_count_only_from_a_trusted_proxy(settings):
    settings.TRUSTED_PROXIES = ["10.9.0.0/16"]
    stranger = _through_proxy_middleware(
        REMOTE_ADDR="203.0.113.5", HTTP_X_FORWARDED_PROTO="https", HTTP_X_FORWARDED_FOR="1.2.3.4"
    )
    proxied = _through_proxy_middleware(
        REMOTE_ADDR="10.9.0.2",
        HTTP_X_FORWARDED_PROTO="https",
        HTTP_X_FORWARDED_FOR="1.2.3.4, 198.51.100.7, 10.9.0.3",
    )
    garbage = _through_proxy_middleware(REMOTE_ADDR="10.9.0.2", HTTP_X_FORWARDED_FOR="x, <script>")
    assert stranger == {"secure": False, "address": "203.0.113.5"}
    assert proxied == {"secure": True, "address": "198.51.100.7"}
    assert garbage["address"] == "10.9.0.2"


def test_without_trusted_proxies_nobody_may_claim_https(settings):
    settings.TRUSTED_PROXIES = []
    with override_settings(SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https")):
        seen = _through_proxy_middleware(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_PROTO="https")
    assert seen["secure"] is False


# Headers and checks ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/accounts/login/", "/admin/", "/agreement/", "/exports/"])
def test_every_html_page_has_a_strict_content_security_policy(client, staff_admin, path):
    client.force_login(staff_admin)
    response = client.get(path, follow=True)
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy


def test_debug_on_a_public_host_is_reported_at_startup(settings):
    settings.DEBUG = True
    settings.ALLOWED_HOSTS = ["localhost", "review.example.org"]
    [warning] = [m for m in run_checks() if m.id == "spavl.W001"]
    assert "review.example.org" in warning.msg
    settings.ALLOWED_HOSTS = ["localhost", "127.0.0.1", "app.localhost"]
    assert not [m for m in run_checks() if m.id == "spavl.W001"]


def test_the_tokens_page_makes_a_token_shows_its_secret_once_and_revokes_it(exporter):
    page = Client()
    page.force_login(exporter)
    made = page.post(
        "/settings/tokens/new/", {"name": "from the page", "scopes": ["export"], "days": 7}
    )
    assert made.status_code == 200 and made["Cache-Control"] == "no-store"
    [token] = ApiToken.objects.filter(user=exporter)
    html = made.content.decode()
    secret = html.split('class="token-secret" readonly value="')[1].split('"')[0]
    assert _token_client(secret).get("/api/v1/tokens/").status_code == 200
    assert secret not in page.get("/settings/tokens/").content.decode()  # shown once
    refused = page.post("/settings/tokens/new/", {"name": "more", "scopes": ["admin"], "days": 7})
    assert refused.status_code == 400 and "may not use the scopes admin" in refused.content.decode()
    assert page.post(f"/settings/tokens/{token.token_key}/revoke/").status_code == 302
    assert _token_client(secret).get("/api/v1/tokens/").status_code == 401
