"""One env-driven settings module.

Without environment variables it runs the embedded default: SQLite in ``var/`` and Celery tasks
executed in-process. ``DATABASE_URL`` selects PostgreSQL, ``REDIS_URL`` a real Celery broker.
``SPAVL_PRODUCTION=1`` turns on the deployment checks and refuses to start without a secret key.
"""

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
import django_stubs_ext
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

# Lets typed generics such as ModelAdmin[Model] work at run time.
django_stubs_ext.monkeypatch()


def env_str(name: str, default: str | None = None) -> str:
    value = os.environ.get(name, default)
    if value is None:
        raise ImproperlyConfigured(f"Set the {name} environment variable.")
    return value


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off", ""}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false), not {raw!r}.")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, not {raw!r}.") from None


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        return float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, not {raw!r}.") from None


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in env_str(name, default).split(",") if item.strip()]


PRODUCTION = env_bool("SPAVL_PRODUCTION")
DEBUG = env_bool("DEBUG", default=not PRODUCTION)
if PRODUCTION and DEBUG:
    raise ImproperlyConfigured(
        "DEBUG=1 with SPAVL_PRODUCTION=1: debug pages leak settings and data."
    )

if PRODUCTION:
    SECRET_KEY = env_str("SECRET_KEY")  # no default: a guessable key is a CVSS 9.8 hole
    if len(SECRET_KEY) < 50 or SECRET_KEY.startswith("django-insecure"):
        raise ImproperlyConfigured("SECRET_KEY must be a random string of at least 50 characters.")
else:
    SECRET_KEY = env_str("SECRET_KEY", "django-insecure-development-only-never-in-production")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "" if PRODUCTION else "127.0.0.1,localhost,testserver")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
# Addresses (or networks) of the reverse proxies in front of gunicorn. Only requests from them
# may say, through X-Forwarded-Proto and X-Forwarded-For, that they came over HTTPS and from
# whom (spavl_web.proxy); from anyone else those headers are dropped.
TRUSTED_PROXIES = env_list("SPAVL_TRUSTED_PROXIES")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "template_partials",
    "rest_framework",
    "knox",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",
    "spavl_web",
    "annotation",
    "judging",
]

MIDDLEWARE = [
    # First: forwarded headers are believed only from a trusted proxy, before anything reads them.
    "spavl_web.proxy.TrustedProxyMiddleware",
    # Then: answers the container's health check before the host check and the HTTPS redirect.
    "spavl_web.health.HealthCheckMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, as django-axes asks: turns a locked-out login into its lockout page.
    "axes.middleware.AxesMiddleware",
]

if PRODUCTION:
    # Serves collectstatic's output under gunicorn (the review page's blur needs its CSS);
    # runserver serves the sources itself in development.
    MIDDLEWARE.insert(
        MIDDLEWARE.index("csp.middleware.CSPMiddleware") + 1,
        "whitenoise.middleware.WhiteNoiseMiddleware",
    )

ROOT_URLCONF = "spavl_web.urls"
WSGI_APPLICATION = "spavl_web.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "spavl_web.context_processors.navigation",
            ],
        },
    },
]

VAR_DIR = Path(env_str("SPAVL_VAR_DIR", str(BASE_DIR / "var")))

if "DATABASE_URL" in os.environ:
    DATABASES = {"default": dj_database_url.parse(env_str("DATABASE_URL"), conn_max_age=60)}
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        # Django turns psycopg's prepared statements off (prepare_threshold None), which also
        # ignores an explicit prepare=True. Django's own cursors bind on the client and never
        # prepare whatever this says; a threshold no query reaches leaves exactly the
        # statements that ask for it (the claim) prepared. Behind a pooler in transaction
        # mode without prepared-statement support (PgBouncer before 1.21), set
        # SPAVL_DB_PREPARE=0.
        DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = (
            2**31 - 1 if env_bool("SPAVL_DB_PREPARE", True) else None
        )
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(VAR_DIR / "spavl.sqlite3"),
            # IMMEDIATE takes the write lock at BEGIN, so claiming work is race-free here too.
            "OPTIONS": {"transaction_mode": "IMMEDIATE", "timeout": 20},
        }
    }
# Parallel test runs (several developers, CI) each need their own test database.
if test_db_name := os.environ.get("SPAVL_TEST_DB_NAME"):
    DATABASES["default"]["TEST"] = {"NAME": test_db_name}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# django-axes throttles logins (the login page, the admin's and the API's token login alike):
# after SPAVL_LOGIN_FAILURE_LIMIT failures for one username from one address, that pair is
# locked out for SPAVL_LOGIN_COOLOFF_MINUTES (429 and a page that says so). Admins unlock in
# the admin (Axes: access attempts) or with `manage.py axes_reset_username NAME`.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("SPAVL_LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_float("SPAVL_LOGIN_COOLOFF_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_HTTP_RESPONSE_CODE = 429
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_VERBOSE = False
AXES_IPWARE_PROXY_COUNT = None  # REMOTE_ADDR is the client: spavl_web.proxy set it already

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env_str("SPAVL_STATIC_ROOT", str(VAR_DIR / "staticfiles")))
# Production serves hashed, compressed copies (cached for a year); development the sources.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "login"

# Uploaded and exported files never sit under STATIC_ROOT; exports go here.
EXPORT_ROOT = Path(env_str("SPAVL_EXPORT_ROOT", str(VAR_DIR / "exports")))
# Largest parquet shard an export writes (Hugging Face keeps shards around 500 MB).
EXPORT_SHARD_BYTES = env_int("SPAVL_EXPORT_SHARD_BYTES", 450 * 1024 * 1024)
# The agreement dashboard recomputes inline when that took less than this many seconds last
# time; otherwise it serves the previous figures, marked stale, and recomputes in the background.
SPAVL_AGREEMENT_INLINE_S = env_float("SPAVL_AGREEMENT_INLINE_S", 1.0)

# Images: formats we accept and the largest decoded size (pixels). Pillow's own limit is ~89 MP.
IMAGE_FORMATS = ("JPEG", "PNG", "WEBP", "GIF")
IMAGE_MAX_PIXELS = env_int("SPAVL_IMAGE_MAX_PIXELS", 40_000_000)
IMAGE_MAX_BYTES = env_int("SPAVL_IMAGE_MAX_BYTES", 25 * 1024 * 1024)
# Imports: what one JSON row or JSONL line, and one parquet row group's pages decompressed at
# once, may hold; how long a read may make no progress before the import fails.
IMPORT_ROW_MAX_BYTES = env_int("SPAVL_IMPORT_ROW_MAX_BYTES", 16 * 1024 * 1024)
IMPORT_PAGE_MAX_BYTES = env_int(
    "SPAVL_IMPORT_PAGE_MAX_BYTES", max(96 * 1024 * 1024, 2 * IMAGE_MAX_BYTES)
)
IMPORT_READ_TIMEOUT_S = env_float("SPAVL_IMPORT_READ_TIMEOUT_S", 300.0)
# Imports over the API: files the server may read (nothing outside this folder, ever), where
# uploads are streamed to (deleted once imported) and how large one may be, and where every
# import's report of rejected rows goes. Web and workers must see the same folders.
IMPORT_ROOT = Path(env_str("SPAVL_IMPORT_ROOT", str(VAR_DIR / "imports" / "data")))
IMPORT_UPLOAD_DIR = Path(env_str("SPAVL_IMPORT_UPLOAD_DIR", str(VAR_DIR / "imports" / "uploads")))
IMPORT_UPLOAD_MAX_BYTES = env_int("SPAVL_IMPORT_UPLOAD_MAX_BYTES", 4 * 1024**3)
IMPORT_REPORT_DIR = Path(env_str("SPAVL_IMPORT_REPORT_DIR", str(VAR_DIR / "import-reports")))

REST_FRAMEWORK = {
    # Token first: an unauthenticated request gets 401 with "WWW-Authenticate: Token".
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "spavl_web.tokens.ScopedTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
        "spavl_web.tokens.TokenHasScope",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # Bodies are JSON; an endpoint that takes a file upload opts in to multipart itself.
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    # JSON answers only: DRF's browsable pages need inline styles the CSP refuses.
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
}
# API tokens (django-rest-knox): hashed at rest, expiring, scoped (spavl_web.tokens).
KNOX_TOKEN_MODEL = "spavl_web.ApiToken"
# knox's own migrations would create its default token table even though it is swapped out
# (and nothing would ever write to it); without them no such table exists.
MIGRATION_MODULES = {"knox": None}
TOKEN_TTL_DAYS = env_int("SPAVL_TOKEN_TTL_DAYS", 30)
TOKEN_MAX_TTL_DAYS = env_int("SPAVL_TOKEN_MAX_TTL_DAYS", 365)
REST_KNOX = {
    "TOKEN_TTL": timedelta(days=TOKEN_TTL_DAYS),
    "AUTO_REFRESH": False,
    "TOKEN_PREFIX": "spavl_",
    "AUTH_HEADER_PREFIX": "Token",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "spavl-web API",
    "DESCRIPTION": "Review studio for safety preference data of vision-language models.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema describes every endpoint: signed-in users only, like the API itself.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    # Swagger UI and ReDoc from vendored files (drf-spectacular-sidecar): no CDN, no internet.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # One name per choice set that several fields share (blind and final verdicts...).
    "ENUM_NAME_OVERRIDES": {
        "VerdictEnum": "annotation.models.Verdict",
        "QuestionTypeEnum": "annotation.models.QuestionType",
        "ImportFormatEnum": "annotation.models.ImportFormat",
        "ExportFormatEnum": "annotation.models.ExportFormat",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "spavl_web.openapi.add_error_responses",
    ],
}

# Celery: without REDIS_URL every task runs in-process (the embedded demo).
REDIS_URL = os.environ.get("REDIS_URL", "")
# Cache (agreement dashboards): Redis when REDIS_URL is set, else per-process memory.
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
    if REDIS_URL
    else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
}
CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {
    "judging.tasks.judge_batch": {"queue": "judge"},
    "judging.tasks.generate_batch": {"queue": "generate"},
}
# A batch must finish well inside the visibility timeout, or Redis hands it to a second worker.
CELERY_TASK_SOFT_TIME_LIMIT = env_int("SPAVL_TASK_SOFT_TIME_LIMIT", 30 * 60)
CELERY_TASK_TIME_LIMIT = env_int("SPAVL_TASK_TIME_LIMIT", CELERY_TASK_SOFT_TIME_LIMIT + 60)
# After this long unacknowledged (a worker died), Redis hands the task to another worker.
CELERY_VISIBILITY_TIMEOUT = env_int("SPAVL_VISIBILITY_TIMEOUT_S", CELERY_TASK_TIME_LIMIT + 30 * 60)
if not CELERY_TASK_SOFT_TIME_LIMIT < CELERY_TASK_TIME_LIMIT < CELERY_VISIBILITY_TIMEOUT:
    raise ImproperlyConfigured(
        "Need SPAVL_TASK_SOFT_TIME_LIMIT < SPAVL_TASK_TIME_LIMIT < SPAVL_VISIBILITY_TIMEOUT_S, "
        "or Redis redelivers batches that are still running."
    )
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": CELERY_VISIBILITY_TIMEOUT,
    # How often a worker looks for tasks left unacknowledged by a dead worker (kombu's default
    # scans every 10th sweep of 10 s, so recovery could wait 100 s past the visibility timeout).
    "unacked_restore_interval": env_int("SPAVL_UNACKED_RESTORE_INTERVAL_S", 60),
    "unacked_restore_throttle": 1,
}
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = True

# Background jobs (exports, judge batches, imports) write a heartbeat every SPAVL_HEARTBEAT_S;
# one quiet for SPAVL_JOB_LEASE_S is taken to be dead. Every SPAVL_SWEEP_INTERVAL_S the
# recovery sweep (Celery beat) re-sends dead or lost jobs, or fails them once their attempts
# are spent. Worst case from a kill to the job running again: lease + sweep interval.
JOB_HEARTBEAT_S = env_float("SPAVL_HEARTBEAT_S", 20.0)
JOB_LEASE_S = env_float("SPAVL_JOB_LEASE_S", 120.0)
SWEEP_INTERVAL_S = env_float("SPAVL_SWEEP_INTERVAL_S", 60.0)
# A queued job whose message is in no queue this long after it was sent is sent again.
QUEUED_GRACE_S = env_float("SPAVL_QUEUED_GRACE_S", 60.0)
EXPORT_MAX_ATTEMPTS = env_int("SPAVL_EXPORT_MAX_ATTEMPTS", 3)
if not 0 < 2 * JOB_HEARTBEAT_S <= JOB_LEASE_S:
    raise ImproperlyConfigured(
        "Need 0 < 2 * SPAVL_HEARTBEAT_S <= SPAVL_JOB_LEASE_S, or live jobs look dead."
    )
CELERY_BEAT_SCHEDULE = {
    "recover-stalled-jobs": {
        "task": "annotation.tasks.recover_stalled_jobs",
        "schedule": SWEEP_INTERVAL_S,
        # A sweep not started by the next one is stale: never let them pile up.
        "options": {"expires": SWEEP_INTERVAL_S},
    },
}

# The judge worker: pairs per Celery task, and deliveries before a batch is given up.
JUDGE_BATCH_SIZE = env_int("SPAVL_JUDGE_BATCH_SIZE", 128)
JUDGE_MAX_ATTEMPTS = env_int("SPAVL_JUDGE_MAX_ATTEMPTS", 3)
# Seconds every judge batch (export shard) sleeps before writing: only for crash-recovery
# tests and demos. The judge's sleep holds off signals as a long GPU call does, so the soft
# time limit lands when it returns and the hard limit can cut it short.
JUDGE_BATCH_DELAY_S = env_float("SPAVL_JUDGE_BATCH_DELAY_S", 0.0)
EXPORT_SHARD_DELAY_S = env_float("SPAVL_EXPORT_SHARD_DELAY_S", 0.0)

if PRODUCTION:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", default=True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    # A proxy that terminates TLS says so; only proxies listed in SPAVL_TRUSTED_PROXIES can.
    if TRUSTED_PROXIES:
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
# Content-Security-Policy on every response (django-csp): scripts, styles and everything else
# from this site only; no inline script, no inline style, no eval; never framed.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:", "blob:"],
        "connect-src": ["'self'"],
        "font-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}
SECURE_REFERRER_POLICY = "same-origin"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}
