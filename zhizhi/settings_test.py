"""Settings for the test suite: a fixed data key, huey tasks run inline, fast password hashing."""

import os

os.environ.setdefault("ZHIZHI_DATA_KEY", "emhpemhpLXRlc3Qta2V5LW5vdC1mb3ItcHJvZC0zMmI=")
os.environ.setdefault(
    "ZHIZHI_VAR_DIR", os.path.join(os.path.dirname(os.path.dirname(__file__)), "var", "test")
)

from zhizhi.settings import *  # noqa: F403
from zhizhi.settings import HUEY

ZHIZHI_DATA_KEY = os.environ["ZHIZHI_DATA_KEY"]
HUEY = {**HUEY, "immediate": True}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
ZHIZHI_IMPORT_MAX_BYTES = 2 * 1024 * 1024
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
