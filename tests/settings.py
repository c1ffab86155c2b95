"""Settings for the test process itself: the real settings with safe local defaults for the env."""

import os

os.environ.setdefault("DJANGO_DEBUG", "1")
os.environ.setdefault("DJANGO_SECRET_KEY", "test-only-secret-key-not-for-production-0123456789")
os.environ.pop("REDIS_URL", None)  # unit tests run the embedded layer; integration tests start daphne with Redis

from tradingsite.settings import *  # noqa: F403
