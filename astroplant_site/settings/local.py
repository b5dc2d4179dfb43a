"""Local development: `make run`. Never use on a server: it has a known secret key."""

from .base import *  # noqa: F403
from .base import env

DEBUG = env.bool("DJANGO_DEBUG", default=True)
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="local-development-only-not-a-secret")
# The demo admin (admin/admin) and demo kits may be created only under these settings.
DEMO_DATA_ALLOWED = True
# A project CA under var/ca is made on first use (production mounts a managed one).
IOT_CA_AUTO_CREATE = True
