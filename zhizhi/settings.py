"""Settings for Zhizhi. Everything that differs between machines comes from the environment.

DATABASE_URL   sqlite:///path (default var/zhizhi.sqlite3) or postgresql://user@host:port/name
REDIS_URL      when set, huey uses Redis instead of its SQLite file
ZHIZHI_DATA_KEY / ZHIZHI_DATA_KEY_FILE   the AES-256 key for personal data (see zhizhi/crypto.py)
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import unquote, urlparse

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("ZHIZHI_VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = os.environ.get("ZHIZHI_DEBUG", "0") == "1"
SECRET_KEY = os.environ.get("ZHIZHI_SECRET_KEY", "dev-only-not-secret-change-me-in-production-0123456789")
ALLOWED_HOSTS = os.environ.get("ZHIZHI_ALLOWED_HOSTS", "127.0.0.1,localhost,testserver").split(",")
CSRF_TRUSTED_ORIGINS = [f"http://{h}:8000" for h in ALLOWED_HOSTS if h]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "huey.contrib.djhuey",
    "ninja",  # serves the Swagger UI assets locally (otherwise /api/v1/docs loads them from a CDN)
    "zhizhi",
    "zhizhi.geo",
    "zhizhi.orgs",
    "zhizhi.people",
    "zhizhi.enterprises",
    "zhizhi.notify",
    "zhizhi.cases",
    "zhizhi.open311",
    "zhizhi.intake",
    "zhizhi.alerts",
    "zhizhi.cockpit",
    "zhizhi.cockpit.emergency",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "zhizhi.context.ActorMiddleware",
]

ROOT_URLCONF = "zhizhi.urls"
ASGI_APPLICATION = "zhizhi.asgi.application"
AUTH_USER_MODEL = "orgs.User"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "zhizhi" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.i18n",
                "zhizhi.context_processors.holiday_banner",
            ],
        },
    },
]


def _database_from_url(url: str) -> dict:
    parsed = urlparse(url)
    if parsed.scheme == "sqlite":
        # sqlite:///relative/path or sqlite:////absolute/path
        name = unquote(parsed.path)
        name = name[1:] if name.startswith("//") else name.lstrip("/")
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": name or str(VAR_DIR / "zhizhi.sqlite3"),
            "OPTIONS": {
                "init_command": (
                    "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=10000;"
                ),
                "transaction_mode": "IMMEDIATE",
            },
            "TEST": {"NAME": ":memory:"},
        }
    if parsed.scheme in ("postgres", "postgresql"):
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parsed.path.lstrip("/")) or "zhizhi",
            "USER": unquote(parsed.username or os.environ.get("PGUSER", "postgres")),
            "PASSWORD": unquote(parsed.password or ""),
            "HOST": parsed.hostname or "127.0.0.1",
            "PORT": str(parsed.port or 5432),
            "CONN_MAX_AGE": 60,
        }
    raise ValueError(
        f"DATABASE_URL scheme not supported: {parsed.scheme!r} (use sqlite:/// or postgresql://)"
    )


DATABASES = {
    "default": _database_from_url(os.environ.get("DATABASE_URL", f"sqlite:///{VAR_DIR / 'zhizhi.sqlite3'}"))
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "zh-hans"
LANGUAGES = [("zh-hans", "简体中文"), ("en", "English")]
LOCALE_PATHS = [BASE_DIR / "zhizhi" / "locale"]
TIME_ZONE = "Asia/Shanghai"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "staticfiles"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # WhiteNoise serves from the finders until collectstatic
STATICFILES_DIRS = [BASE_DIR / "zhizhi" / "static"]
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG
MEDIA_URL = "/media/"
MEDIA_ROOT = VAR_DIR / "media"

# Personal data: see zhizhi/crypto.py. The demo writes a key file with mode 0600.
ZHIZHI_DATA_KEY = os.environ.get("ZHIZHI_DATA_KEY", "")
ZHIZHI_DATA_KEY_FILE = os.environ.get("ZHIZHI_DATA_KEY_FILE", str(VAR_DIR / "data.key"))

# Imports: the largest upload accepted, in bytes.
ZHIZHI_IMPORT_MAX_BYTES = int(os.environ.get("ZHIZHI_IMPORT_MAX_BYTES", str(20 * 1024 * 1024)))
DATA_UPLOAD_MAX_MEMORY_SIZE = ZHIZHI_IMPORT_MAX_BYTES + 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024

# The street this installation serves (its region code); the demo creates 330105001.
ZHIZHI_STREET_CODE = os.environ.get("ZHIZHI_STREET_CODE", "") or "330105001"

# Notification gateways (see zhizhi/notify/adapters.py). Robots: a JSON object {"name": "webhook url"}.
ZHIZHI_SMS_URL = os.environ.get("ZHIZHI_SMS_URL", "")
ZHIZHI_SMS_SIGN = os.environ.get("ZHIZHI_SMS_SIGN", "智治")
ZHIZHI_DINGTALK_WEBHOOKS = json.loads(os.environ.get("ZHIZHI_DINGTALK_WEBHOOKS", "{}"))
ZHIZHI_WECOM_WEBHOOKS = json.loads(os.environ.get("ZHIZHI_WECOM_WEBHOOKS", "{}"))
EMAIL_BACKEND = os.environ.get("ZHIZHI_EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")

# Working hours of the street (deadlines in working time, see zhizhi/cases/worktime.py), local TIME_ZONE.
ZHIZHI_WORK_HOURS = [("08:30", "12:00"), ("13:30", "17:30")]

# Cases (docs/cases.md): photo size limit, minutes between turning red and each automatic escalation,
# the public address used in the reporter's rating link, and group robots told of escalations.
ZHIZHI_PHOTO_MAX_BYTES = int(os.environ.get("ZHIZHI_PHOTO_MAX_BYTES", str(10 * 1024 * 1024)))
ZHIZHI_ESCALATION_GRACE_MINUTES = float(os.environ.get("ZHIZHI_ESCALATION_GRACE_MINUTES", "30"))
ZHIZHI_SITE_URL = os.environ.get("ZHIZHI_SITE_URL", "")
ZHIZHI_CASE_ROBOTS = json.loads(os.environ.get("ZHIZHI_CASE_ROBOTS", "{}"))

# Map background tiles (e.g. "https://tiles.example/{z}/{x}/{y}.png"); empty = offline blank background.
ZHIZHI_TILE_URL = os.environ.get("ZHIZHI_TILE_URL", "")
# Sensing devices (zhizhi.alerts): the MQTT broker and topic the bridge subscribes to, how long raw
# readings are kept, and how many readings one device may send per minute before it is throttled.
ZHIZHI_MQTT_URL = os.environ.get("ZHIZHI_MQTT_URL", "mqtt://127.0.0.1:1883")
ZHIZHI_MQTT_TOPIC = os.environ.get("ZHIZHI_MQTT_TOPIC", "zhizhi/+/+/telemetry")
ZHIZHI_READING_RETENTION_DAYS = int(os.environ.get("ZHIZHI_READING_RETENTION_DAYS", "90"))
ZHIZHI_DEVICE_RATE_PER_MINUTE = int(os.environ.get("ZHIZHI_DEVICE_RATE_PER_MINUTE", "120"))

REDIS_URL = os.environ.get("REDIS_URL", "")
HUEY_IMMEDIATE = os.environ.get("HUEY_IMMEDIATE", "0") == "1"
if REDIS_URL:
    HUEY = {
        "huey_class": "huey.RedisHuey",
        "name": "zhizhi",
        "url": REDIS_URL,
        "immediate": HUEY_IMMEDIATE,
        "consumer": {"workers": 2, "worker_type": "thread"},
    }
else:
    HUEY = {
        "huey_class": "huey.SqliteHuey",
        "name": "zhizhi",
        "filename": str(VAR_DIR / "huey.sqlite3"),
        "immediate": HUEY_IMMEDIATE,
        "consumer": {"workers": 2, "worker_type": "thread"},
    }

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("ZHIZHI_LOG_LEVEL", "INFO")},
    "loggers": {"jieba": {"level": "WARNING"}},
}
