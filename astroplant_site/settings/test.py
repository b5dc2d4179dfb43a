"""The test suite. SQLite unless DATABASE_URL names another database (CI runs PostgreSQL too)."""

from .base import *  # noqa: F403
from .base import BASE_DIR, env

DEBUG = False
SECRET_KEY = "test-only-not-a-secret"
DEMO_DATA_ALLOWED = True
DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'var' / 'test.sqlite3'}"),
}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast; tests only
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# Serve static files from the apps, as in development: the tests run no collectstatic.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
# Telemetry: retry unprocessed writes quickly, so the tests of that path stay fast.
TELEMETRY_WRITE_BACKOFF_BASE_SECONDS = 0.001
TELEMETRY_WRITE_BACKOFF_MAX_SECONDS = 0.01
