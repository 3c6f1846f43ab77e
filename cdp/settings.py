"""Settings for the CDP: one module, driven by the environment.

Defaults give a working local install on SQLite with the django-q2 database broker.
Production sets DATABASE_URL (PostgreSQL), REDIS_URL, SECRET_KEY, ALLOWED_HOSTS and DEBUG=0.
"""

import os
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("CDP_VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DEBUG", True)
SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise RuntimeError("SECRET_KEY must be set when DEBUG is off.")
    SECRET_KEY = "insecure-local-development-key-do-not-use-in-production"
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")
# Web pages allowed to send events from the browser (analytics.js, RudderStack JS) to /v1/:
# "*" (any page, as Segment's own API: the write key is public in the page) or a list of
# origins such as "https://shop.example.com".
CDP_TRACKING_CORS_ORIGINS = env_list("CDP_TRACKING_CORS_ORIGINS", "*")

INSTALLED_APPS = [
    "cdp.apps.CdpAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_q",
    "django_htmx",
    "cdp.apps.CdpConfig",
    "profiles",
    "segments",
    "activation",
    "insights",
    "consent",
]

MIDDLEWARE = [
    "cdp.api.api_json_errors",  # outermost: JSON 404/405 under /api/ and /v1/, DEBUG or not
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "cdp.urls"
WSGI_APPLICATION = "cdp.wsgi.application"

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
            ],
        },
    },
]

# Database: SQLite in var/ by default (WAL, so the web server and a worker can share it);
# DATABASE_URL=postgres://... switches to PostgreSQL with persistent connections.
DATABASE_URL = os.environ.get("DATABASE_URL", "")
if DATABASE_URL:
    DATABASES = {
        "default": dj_database_url.parse(
            DATABASE_URL,
            conn_max_age=int(os.environ.get("CONN_MAX_AGE", "600")),
            conn_health_checks=True,
        )
    }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": VAR_DIR / "cdp.sqlite3",
            "OPTIONS": {
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                "transaction_mode": "IMMEDIATE",
                "timeout": 30,
            },
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Background jobs: django-q2 with the database broker; REDIS_URL switches the broker to Redis.
Q_CLUSTER = {
    "name": "cdp",
    "workers": int(os.environ.get("CDP_WORKERS", "1")),
    "timeout": 3600,
    "retry": 3660,
    "max_attempts": 1,
    "catch_up": False,
    "ack_failures": True,
    "sync": env_bool("CDP_TASKS_SYNC", False),
}
REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"
    Q_CLUSTER["poll"] = 1

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
# The workspace time zone: calendar periods in segments ("yesterday", "last month") use it.
CDP_TIME_ZONE = os.environ.get("CDP_TIME_ZONE", "Europe/Berlin")

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
MEDIA_URL = "media/"
MEDIA_ROOT = Path(os.environ.get("CDP_MEDIA_ROOT", VAR_DIR / "media"))
# Where file-export destinations write (each destination in its own sub-folder).
CDP_ACTIVATION_STORAGE = Path(os.environ.get("CDP_ACTIVATION_STORAGE", VAR_DIR / "exports"))
# Uploads larger than this go to a temporary file instead of memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "EXCEPTION_HANDLER": "cdp.api.exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
}

# Identifier values that are never used as match keys (compared after normalisation).
CDP_PLACEHOLDER_VALUES = env_list(
    "CDP_PLACEHOLDER_VALUES",
    "test@test.com,none@none.com,noemail@noemail.com,no@email.com,email@email.com,"
    "test@example.com,null@null.com,na@na.com,a@a.com,x@x.com,unknown@unknown.com,"
    "0000000000,1111111111,1234567890,+10000000000,+11111111111,+11234567890,"
    "+1,0,n/a,na,none,null,unknown,-,test,anonymous",
)
# Privacy (docs/privacy.md). The salt of the suppression list's identifier hashes: set it once
# and keep it (changing it makes every stored hash unmatchable). Default: derived from SECRET_KEY.
CDP_SUPPRESSION_SALT = os.environ.get("CDP_SUPPRESSION_SALT", "")
# Public holidays (ISO dates) that are not business days for privacy deadlines.
CDP_PRIVACY_HOLIDAYS = env_list("CDP_PRIVACY_HOLIDAYS", "")
# Base URL of the public privacy request page, for verification links in e-mails.
CDP_PUBLIC_BASE_URL = os.environ.get("CDP_PUBLIC_BASE_URL", "http://localhost:8000")
EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_FILE_PATH = os.environ.get("EMAIL_FILE_PATH", str(VAR_DIR / "mail"))
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "privacy@localhost")
# Insights: money is reported in the workspace currency; other currencies are converted by this
# fixed table ("USD=0.92,GBP=1.17": one unit of USD is 0.92 units of CDP_CURRENCY) or, without a
# rate, kept out of amounts and counted separately (docs/insights.md).
CDP_CURRENCY = os.environ.get("CDP_CURRENCY", "EUR").upper()
CDP_CURRENCY_RATES = {
    code.strip().upper(): float(rate)
    for code, _, rate in (item.partition("=") for item in env_list("CDP_CURRENCY_RATES", ""))
}

# The region used for phone numbers when neither the record nor its source names a country.
CDP_DEFAULT_PHONE_REGION = os.environ.get("CDP_DEFAULT_PHONE_REGION", "")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "filters": {"no_query": {"()": "cdp.logs.QueryStringRedacted"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # One line per 4xx/5xx: Django's own console handler (DEBUG) and the root's printed both.
        "django": {"handlers": ["console"], "level": "INFO", "propagate": False},
        # runserver's request lines, without the query strings that carry identifiers.
        "django.server": {
            "handlers": ["console"],
            "level": "INFO",
            "propagate": False,
            "filters": ["no_query"],
        },
    },
}

if not DEBUG:
    SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", True)
    CSRF_COOKIE_SECURE = env_bool("SECURE_COOKIES", True)
