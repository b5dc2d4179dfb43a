"""Settings shared by every environment. Values come from the environment (see `.env.example`)."""

from datetime import timedelta
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()
# A developer's own overrides, if the file exists (it is never committed; see .env.example).
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "knox",
    "axes",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "kits",
    "telemetry",
    "control",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it turns a locked-out sign-in into its lockout response.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "astroplant_site.urls"
WSGI_APPLICATION = "astroplant_site.wsgi.application"

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

# SQLite by default; DATABASE_URL (postgres://...) selects PostgreSQL.
DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'var' / 'db.sqlite3'}"),
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTHENTICATION_BACKENDS = [
    # First, so a locked-out user is refused before the password is even checked.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

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

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "astroplant_site.token_auth.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "astroplant_site.api_errors.api_exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    # Requests per caller (a signed-in user, else the client's address) and period, as "N/second",
    # "N/minute", "N/hour" or "N/day"; past it, 429 with Retry-After. Every API request counts
    # against `anon` or `user`; GET /kits/{id}/data also against `data`, and as CSV against `data_csv`.
    "DEFAULT_THROTTLE_CLASSES": ["astroplant_site.api.AnonThrottle", "astroplant_site.api.UserThrottle"],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env.str("API_THROTTLE_ANON_RATE", default="120/minute"),
        "user": env.str("API_THROTTLE_USER_RATE", default="600/minute"),
        "data": env.str("API_THROTTLE_DATA_RATE", default="60/minute"),
        "data_csv": env.str("API_THROTTLE_DATA_CSV_RATE", default="20/hour"),
    },
}

# The API's throttle counts live here, so every web worker on every machine agrees: by default a
# table in the database (`manage.py createcachetable` makes it; the tests make it themselves);
# CACHE_URL=redis://host:6379/1 puts them in Redis instead, cheaper per request.
CACHES = {"default": env.cache_url("CACHE_URL", default="dbcache://astroplant_cache")}
if CACHES["default"]["BACKEND"] == "django.core.cache.backends.redis.RedisCache":
    # Django's, keeping one Redis client per process rather than making one per call.
    CACHES["default"]["BACKEND"] = "astroplant_site.cache.RedisCache"
if CACHES["default"]["BACKEND"].endswith("DatabaseCache"):
    # Django's default of 300 entries would drop live counts once 300 callers are counted at once.
    CACHES["default"].setdefault("OPTIONS", {}).setdefault("MAX_ENTRIES", 100_000)

REST_KNOX = {
    # The mobile app signs in rarely; a token lives this long after its last use.
    "TOKEN_TTL": timedelta(days=env.int("API_TOKEN_TTL_DAYS", default=30)),
    "AUTO_REFRESH": True,
    "AUTH_HEADER_PREFIX": "Token",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "AstroPlant API",
    "DESCRIPTION": (
        "Kits, their members and their telemetry, for the AstroPlant mobile app and dashboard. "
        "Sign in with `POST /auth/token`, then send `Authorization: Token <token>`."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "astroplant_site.openapi.add_common_error_responses",
    ],
    "ENUM_NAME_OVERRIDES": {
        "MembershipRoleEnum": "kits.models.Role",
        "ActuatorKindEnum": "kits.models.ActuatorKind",
    },
}

# The client's address: behind this many proxies (load balancers, CDNs) that every request passes
# and that each append to X-Forwarded-For, the address the outermost one saw; 0 (no proxy, as
# locally): the socket's. Sign-in throttling, API throttles and the bundle-download log all read it
# (astroplant_site/client_address.py). More than the real number lets clients choose their address.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)

# Failed sign-ins: after AXES_FAILURE_LIMIT failures for one username from one address,
# that pair is refused for AXES_COOLOFF_MINUTES. Stored in the database, so every web
# worker on every machine agrees.
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("AXES_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_CLIENT_IP_CALLABLE = "astroplant_site.client_address.client_address"
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = None
AXES_VERBOSE = False

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"axes": {"level": "WARNING"}},
}
AXES_LOCKOUT_CALLABLE = "astroplant_site.auth_api.sign_in_locked_out_response"

# --- AWS -------------------------------------------------------------------------------------
# Endpoints follow boto's own variables (AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_DYNAMODB,
# AWS_ENDPOINT_URL_IOT, ...), read by botocore itself: unset means real AWS.
AWS_REGION = env.str("AWS_REGION", default=env.str("AWS_DEFAULT_REGION", default="eu-central-1"))

# --- Celery and kit provisioning on AWS IoT (docs/provisioning.md) ---------------------------
# The broker: Redis in production and CI (CELERY_BROKER_URL=redis://host:6379/0). Without it,
# a server-less broker in a SQLite file (kombu's SQLAlchemy transport), so a fresh machine works;
# `make run` chooses Redis when one answers on 127.0.0.1:6379.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=f"sqla+sqlite:///{BASE_DIR / 'var' / 'celery-broker.sqlite3'}")
CELERY_TIMEZONE = "UTC"
CELERY_TASK_IGNORE_RESULT = True  # tasks record their outcome on the kit, not in a result store
# A task whose worker dies is delivered again: every task is safe to run twice.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1  # a long AWS call in one task does not hold others back
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE = {
    # Re-queues kits whose provisioning message was lost (e.g. the broker was down at commit).
    "kits-provisioning-sweep": {"task": "kits.provisioning_sweep", "schedule": 300.0},
}
# Transient AWS errors (throttling, connection) are retried by Celery (autoretry_for) with
# exponential backoff and full jitter: a wait drawn from 0 to base * 2**attempt seconds, at most
# PROVISIONING_RETRY_MAX_SECONDS, PROVISIONING_MAX_RETRIES times. Celery counts whole seconds,
# with a base of at least 1, and reads the two durations when a worker starts.
PROVISIONING_RETRY_BASE_SECONDS = env.float("PROVISIONING_RETRY_BASE_SECONDS", default=2.0)
PROVISIONING_RETRY_MAX_SECONDS = env.float("PROVISIONING_RETRY_MAX_SECONDS", default=300.0)
PROVISIONING_MAX_RETRIES = env.int("PROVISIONING_MAX_RETRIES", default=8)
# A worker holds the kit it works on by a lease of this many seconds, renewed every third of it
# while the worker lives: another takes over only once a dead worker's lease has lapsed.
PROVISIONING_LEASE_SECONDS = env.int("PROVISIONING_LEASE_SECONDS", default=120)
# A kit left `pending` this long is queued again by the sweep.
PROVISIONING_STALE_SECONDS = env.int("PROVISIONING_STALE_SECONDS", default=600)

# Where kits connect: describe_endpoint cannot tell us (moto returns made-up hosts). In production
# the account's AWS IoT ATS endpoint (xxxx-ats.iot.<region>.amazonaws.com) and 8883.
IOT_MQTT_ENDPOINT = env.str("IOT_MQTT_ENDPOINT", default="localhost")
IOT_MQTT_PORT = env.int("IOT_MQTT_PORT", default=8883)
# The one least-privilege policy attached to every kit's certificate (kits/iot_policy.py).
IOT_POLICY_NAME = env.str("IOT_POLICY_NAME", default="astroplant-kit")
# The project CA that signs device certificates: IOT_CA_DIR holds ca.crt and ca.key. Local and
# test settings create one there on first use; production mounts its managed secret there.
IOT_CA_DIR = env.path("IOT_CA_DIR", default=BASE_DIR / "var" / "ca")
IOT_CA_AUTO_CREATE = env.bool("IOT_CA_AUTO_CREATE", default=False)
# The CA that signs the *broker's* certificate, put in each bundle as the kit's root CA: Amazon
# Root CA 1 (a PEM file) in production; empty means the project CA (the local mosquitto).
IOT_BROKER_CA_FILE = env.str("IOT_BROKER_CA_FILE", default="")
IOT_DEVICE_CERTIFICATE_DAYS = env.int("IOT_DEVICE_CERTIFICATE_DAYS", default=1825)

# Certificate bundles (each holds a kit's private key): their own private storage, never served.
# S3 when KIT_BUNDLE_BUCKET is set (private ACL, encrypted at rest), else files under var/.
KIT_BUNDLE_BUCKET = env.str("KIT_BUNDLE_BUCKET", default="")
if KIT_BUNDLE_BUCKET:
    STORAGES["kit_bundles"] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": KIT_BUNDLE_BUCKET,
            "location": "kit-bundles",
            "default_acl": "private",
            "querystring_auth": True,
            "file_overwrite": False,
            "object_parameters": {"ServerSideEncryption": "AES256"},
            "region_name": AWS_REGION,
        },
    }
else:
    STORAGES["kit_bundles"] = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {
            "location": BASE_DIR / "var" / "private" / "kit-bundles",
            "base_url": "/no-public-url/",
            "file_permissions_mode": 0o600,
            "directory_permissions_mode": 0o700,
        },
    }

# --- Telemetry (DynamoDB, telemetry/) --------------------------------------------------------
# The two tables are named <prefix>telemetry-readings and -rollups; `manage.py dynamodb_setup`
# creates them (each kit's latest values live in the database, telemetry/kit_state.py).
# The region is AWS_REGION above; the endpoint is boto's own
# AWS_ENDPOINT_URL_DYNAMODB (or AWS_ENDPOINT_URL): unset means real AWS.
DYNAMODB_TABLE_PREFIX = env.str("DYNAMODB_TABLE_PREFIX", default="astroplant-")
# Raw readings expire this long after their timestamp (DynamoDB TTL); hourly and daily rollups
# are kept for good, so long charts outlive the raw data.
TELEMETRY_RAW_RETENTION_DAYS = env.int("TELEMETRY_RAW_RETENTION_DAYS", default=400)
# A reading stamped further ahead than this is refused: a kit's clock is wrong.
TELEMETRY_MAX_FUTURE_SECONDS = env.int("TELEMETRY_MAX_FUTURE_SECONDS", default=600)
# One CSV of raw readings (`?format=csv&resolution=raw`) covers at most this many days; a longer
# range is refused with a 400 saying to narrow it (rollups, and `auto`, are bounded in points).
TELEMETRY_CSV_RAW_MAX_DAYS = env.int("TELEMETRY_CSV_RAW_MAX_DAYS", default=31)
# Writes that DynamoDB leaves unprocessed or throttles are retried this often, with exponential
# backoff and jitter from BASE up to MAX seconds, before the caller is told they failed.
TELEMETRY_WRITE_MAX_ATTEMPTS = env.int("TELEMETRY_WRITE_MAX_ATTEMPTS", default=8)
TELEMETRY_WRITE_BACKOFF_BASE_SECONDS = env.float("TELEMETRY_WRITE_BACKOFF_BASE_SECONDS", default=0.05)
TELEMETRY_WRITE_BACKOFF_MAX_SECONDS = env.float("TELEMETRY_WRITE_BACKOFF_MAX_SECONDS", default=5.0)
# How many 25-item batches of raw readings one write sends at once (botocore's pool holds 10).
TELEMETRY_WRITE_CONCURRENCY = env.int("TELEMETRY_WRITE_CONCURRENCY", default=4)
# Rollups trail the raw readings by at most this long (plus a minute when a refresher stops
# half-way): each hour a reading changes is recounted from the raw readings once this long after
# it was first changed, so a kit reporting every minute costs one rollup write per few readings.
# Readers count the hours not yet refreshed from the raw readings, so charts are never behind.
TELEMETRY_ROLLUP_DELAY_SECONDS = env.int("TELEMETRY_ROLLUP_DELAY_SECONDS", default=300)
# boto and PynamoDB say at INFO where they found credentials and endpoints, on every client.
LOGGING["loggers"].update({"botocore": {"level": "WARNING"}, "pynamodb": {"level": "WARNING"}})

# --- The ingest bridge (`manage.py ingest`, telemetry/ingest.py) ------------------------------
# It subscribes to every kit's measurements and status with its own certificate: on AWS IoT Core
# one whose policy allows that; locally one our project CA issues (IOT_CA_AUTO_CREATE).
INGEST_MQTT_HOST = env.str("INGEST_MQTT_HOST", default=IOT_MQTT_ENDPOINT)
INGEST_MQTT_PORT = env.int("INGEST_MQTT_PORT", default=IOT_MQTT_PORT)
# Each bridge has its own client id (and, locally, its own certificate named after it):
# astroplant.ingest, astroplant.ingest.2, ... (localdev/mosquitto.py lets in eight).
INGEST_CLIENT_ID = env.str("INGEST_CLIENT_ID", default="astroplant.ingest")
# Bridges in one MQTT shared subscription ($share/<group>/...) split the kits' messages between
# them: run more bridges to ingest more. Empty: a plain subscription (each bridge gets everything).
INGEST_SHARE_GROUP = env.str("INGEST_SHARE_GROUP", default="ingest")
INGEST_CREDENTIALS_DIR = Path(
    env.str("INGEST_CREDENTIALS_DIR", default=str(BASE_DIR / "var" / "ingest" / INGEST_CLIENT_ID))
)
INGEST_CERTIFICATE_FILE = env.str(
    "INGEST_CERTIFICATE_FILE", default=str(INGEST_CREDENTIALS_DIR / "certificate.pem.crt")
)
INGEST_PRIVATE_KEY_FILE = env.str("INGEST_PRIVATE_KEY_FILE", default=str(INGEST_CREDENTIALS_DIR / "private.pem.key"))
# The CA that signs the broker's certificate: Amazon Root CA 1 on AWS; the project CA locally.
INGEST_ROOT_CA_FILE = env.str("INGEST_ROOT_CA_FILE", default=str(INGEST_CREDENTIALS_DIR / "root-ca.pem"))
# Readings older than this are refused (a kit that was offline longer has lost them anyway).
INGEST_MAX_AGE_DAYS = env.int("INGEST_MAX_AGE_DAYS", default=30)

# --- Kit control: configuration and commands (control/, DESIGN.md "Two-way") -----------------
# The backend publishes configurations (retained) and commands to the kits with a certificate of
# its own: on AWS IoT Core one whose policy allows publishing on every kit's `config` and
# `commands` topics (docs/production.md); locally one the project CA issues (IOT_CA_AUTO_CREATE),
# under var/backend/<client id>/, which the local mosquitto's ACL lets write exactly those topics.
BACKEND_MQTT_HOST = env.str("BACKEND_MQTT_HOST", default=IOT_MQTT_ENDPOINT)
BACKEND_MQTT_PORT = env.int("BACKEND_MQTT_PORT", default=IOT_MQTT_PORT)
BACKEND_MQTT_CLIENT_ID = env.str("BACKEND_MQTT_CLIENT_ID", default="astroplant.backend")
BACKEND_MQTT_CREDENTIALS_DIR = Path(
    env.str("BACKEND_MQTT_CREDENTIALS_DIR", default=str(BASE_DIR / "var" / "backend" / BACKEND_MQTT_CLIENT_ID))
)
BACKEND_MQTT_CERTIFICATE_FILE = env.str(
    "BACKEND_MQTT_CERTIFICATE_FILE", default=str(BACKEND_MQTT_CREDENTIALS_DIR / "certificate.pem.crt")
)
BACKEND_MQTT_PRIVATE_KEY_FILE = env.str(
    "BACKEND_MQTT_PRIVATE_KEY_FILE", default=str(BACKEND_MQTT_CREDENTIALS_DIR / "private.pem.key")
)
# The CA that signs the broker's certificate: Amazon Root CA 1 on AWS; the project CA locally.
BACKEND_MQTT_ROOT_CA_FILE = env.str(
    "BACKEND_MQTT_ROOT_CA_FILE", default=str(BACKEND_MQTT_CREDENTIALS_DIR / "root-ca.pem")
)
# How long one publication waits for the broker to accept the connection, then to confirm (PUBACK).
BACKEND_MQTT_TIMEOUT_SECONDS = env.float("BACKEND_MQTT_TIMEOUT_SECONDS", default=10.0)
# A broker that is away is retried with exponential backoff and full jitter (whole seconds, as for
# provisioning), this many times; a configuration still unpublished after that is queued again by
# the sweep, once it is CONTROL_PUBLISH_STALE_SECONDS old.
CONTROL_PUBLISH_RETRY_BASE_SECONDS = env.float("CONTROL_PUBLISH_RETRY_BASE_SECONDS", default=2.0)
CONTROL_PUBLISH_RETRY_MAX_SECONDS = env.float("CONTROL_PUBLISH_RETRY_MAX_SECONDS", default=60.0)
CONTROL_PUBLISH_MAX_RETRIES = env.int("CONTROL_PUBLISH_MAX_RETRIES", default=10)
CONTROL_PUBLISH_STALE_SECONDS = env.float("CONTROL_PUBLISH_STALE_SECONDS", default=120.0)
# A command the kit has not answered this long after it was made is expired: the kit never acts
# on it later (its payload carries the expiry).
COMMAND_EXPIRY_SECONDS = env.int("COMMAND_EXPIRY_SECONDS", default=60)
# The measurement interval of a kit never configured from the cloud: the kit agent's own default
# when its kit.toml has no [agent] interval_seconds (device/config.py), which the bundle never writes.
KIT_DEFAULT_INTERVAL_SECONDS = env.float("KIT_DEFAULT_INTERVAL_SECONDS", default=60.0)
SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"].update(
    {"CommandNameEnum": "control.models.CommandName", "CommandStatusEnum": "control.models.CommandStatus"}
)
CELERY_BEAT_SCHEDULE.update(
    {
        # Marks expired the commands no kit answered in time (reads of the commands do too).
        "control-commands-expire": {
            "task": "control.commands_expire",
            "schedule": env.float("CONTROL_EXPIRE_SWEEP_SECONDS", default=15.0),
        },
        # Publishes again the configurations whose publishing task was lost or gave up.
        "control-configurations-publish-sweep": {
            "task": "control.configurations_publish_sweep",
            "schedule": env.float("CONTROL_PUBLISH_SWEEP_SECONDS", default=120.0),
        },
    }
)

# --- Dashboard ------------------------------------------------------------------------------
# A kit counts as online while its latest reading is at most this many minutes old.
DASHBOARD_ONLINE_WITHIN_MINUTES = env.int("DASHBOARD_ONLINE_WITHIN_MINUTES", default=5)
# How often a kit page showing the last hour fetches new readings by itself.
DASHBOARD_REFRESH_SECONDS = env.int("DASHBOARD_REFRESH_SECONDS", default=60)

# --- Hardening (issue 7) ---------------------------------------------------------------------
# The API's schema says exactly what it accepts: request bodies refuse unknown fields, and a PATCH
# body has the same required fields as the serializer the view uses (the member's `role`), rather
# than drf-spectacular's all-optional "Patched" copy.
SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"].append("astroplant_site.openapi.forbid_unknown_request_fields")
SPECTACULAR_SETTINGS["COMPONENT_SPLIT_PATCH"] = False
# A task taken by a worker that died (CELERY_TASK_ACKS_LATE) goes back to the queue once it has
# been out this long: the Redis / SQS "visibility timeout". Longer than any retry countdown
# (PROVISIONING_RETRY_MAX_SECONDS), or a task waiting for its retry would be handed out twice.
# (Applied to Redis and SQS brokers in astroplant_site/celery.py.)
CELERY_VISIBILITY_TIMEOUT_SECONDS = env.int("CELERY_VISIBILITY_TIMEOUT_SECONDS", default=900)
# How often beat runs kits.provisioning_sweep (seconds).
CELERY_BEAT_SCHEDULE["kits-provisioning-sweep"]["schedule"] = env.float("PROVISIONING_SWEEP_SECONDS", default=300.0)
# Content-Security-Policy (django-csp): pages may load scripts, styles, images and API answers from
# this site only, and nothing inline, so injected markup cannot run. The dashboard, the admin and the
# API docs (SpectacularSwaggerSplitView: no inline script) serve everything themselves.
MIDDLEWARE.insert(MIDDLEWARE.index("django.middleware.security.SecurityMiddleware") + 1, "csp.middleware.CSPMiddleware")
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],  # Swagger UI's and the admin's icons are data: URIs
        "connect-src": ["'self'"],
        "font-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}
