import pytest
from django.core.cache import cache


@pytest.fixture(autouse=True)
def _fresh_prices():
    """Last trade prices live in the cache; no test sees another's."""
    cache.clear()
    yield
    cache.clear()
