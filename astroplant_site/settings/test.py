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

# --- Celery and kit provisioning ------------------------------------------------------------
# A real broker: the machine's Redis, in a database number of our own (5) so other test runs
# sharing that Redis do not steal our messages.
CELERY_BROKER_URL = env.str("TEST_CELERY_BROKER_URL", default="redis://127.0.0.1:6379/5")
# The worker process the integration tests start must see the test database, so SQLite's test
# database is a file rather than memory.
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    (BASE_DIR / "var").mkdir(exist_ok=True)
    DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / "var" / "test-db.sqlite3")}
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 30
IOT_CA_DIR = BASE_DIR / "var" / "test" / "ca"
IOT_CA_AUTO_CREATE = True
IOT_DEVICE_CERTIFICATE_DAYS = 30
# Celery's retry backoff counts in whole seconds, at least 1.
PROVISIONING_RETRY_BASE_SECONDS = 1
PROVISIONING_RETRY_MAX_SECONDS = 2
STORAGES["kit_bundles"] = {
    "BACKEND": "django.core.files.storage.FileSystemStorage",
    "OPTIONS": {
        "location": BASE_DIR / "var" / "test" / "kit-bundles",
        "base_url": "/no-public-url/",
        "file_permissions_mode": 0o600,
        "directory_permissions_mode": 0o700,
    },
}

# API throttles: out of the way of every test but the throttle tests, which set their own rates.
# Per second, so a counter never holds more than a second of requests. The counts are kept in the
# test database whatever CACHE_URL says, so each test starts with none (its transaction is undone).
CACHES = {"default": {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "astroplant_cache"}}
REST_FRAMEWORK = {
    **REST_FRAMEWORK,  # noqa: F405
    "DEFAULT_THROTTLE_RATES": {scope: "100000/second" for scope in REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]},  # noqa: F405
}

# Telemetry: retry unprocessed writes quickly, so the tests of that path stay fast.
TELEMETRY_WRITE_BACKOFF_BASE_SECONDS = 0.001
TELEMETRY_WRITE_BACKOFF_MAX_SECONDS = 0.01

# Kit control: the backend's MQTT identity is issued by the test CA; retries come quickly.
BACKEND_MQTT_CREDENTIALS_DIR = BASE_DIR / "var" / "test" / "backend"
BACKEND_MQTT_CERTIFICATE_FILE = str(BACKEND_MQTT_CREDENTIALS_DIR / "certificate.pem.crt")
BACKEND_MQTT_PRIVATE_KEY_FILE = str(BACKEND_MQTT_CREDENTIALS_DIR / "private.pem.key")
BACKEND_MQTT_ROOT_CA_FILE = str(BACKEND_MQTT_CREDENTIALS_DIR / "root-ca.pem")
BACKEND_MQTT_TIMEOUT_SECONDS = 5.0
CONTROL_PUBLISH_RETRY_BASE_SECONDS = 1
CONTROL_PUBLISH_RETRY_MAX_SECONDS = 2
