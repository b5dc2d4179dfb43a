"""Production: every secret comes from the environment, and there is no default for any."""

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import env

DEBUG = False
SECRET_KEY = env.str("DJANGO_SECRET_KEY")  # refuses to start without it
# An empty or short key would only be a warning of `check --deploy`: refuse to start instead.
SECRET_KEY_MIN_LENGTH = 50
if len(SECRET_KEY) < SECRET_KEY_MIN_LENGTH:
    raise ImproperlyConfigured(
        f"DJANGO_SECRET_KEY is {len(SECRET_KEY)} characters long; production needs at least "
        f"{SECRET_KEY_MIN_LENGTH} random ones (for example: python -c 'import secrets; "
        f"print(secrets.token_urlsafe(50))')."
    )
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS")
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])
DEMO_DATA_ALLOWED = False

# Behind a TLS-terminating load balancer that sets X-Forwarded-Proto and appends the client's
# address to X-Forwarded-For: one trusted proxy unless said otherwise (2 with a CDN before it).
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=1)
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=60 * 60 * 24 * 365)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"

# Kits must be told the real AWS IoT endpoint (and, for AWS IoT Core, Amazon's root CA
# in IOT_BROKER_CA_FILE); provisioning fails with a clear reason until they are set.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="redis://127.0.0.1:6379/0")
IOT_MQTT_ENDPOINT = env.str("IOT_MQTT_ENDPOINT", default="")
