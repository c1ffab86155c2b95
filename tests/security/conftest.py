"""A stack of its own for the attacks: two daphne instances on Redis, a migrated SQLite file.

Its own Redis database, because a lockout test locks the address 127.0.0.1 in the shared cache for
15 minutes: no other suite's logins may depend on that cache. Every database but 0 and 1 has an
owner (README), so it takes one of the integration suite's pairs, starting from the end that suite
takes last, under the same file lock; it uses only the database it locked, never its pair's other.
"""

from __future__ import annotations

import json
import uuid

import pytest
import redis
from django.conf import settings

from tests.integration import harness

REDIS_DBS = (3, 5, 7, 9)

USERS_SCRIPT = """
import json
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
User = get_user_model()
ids = {}
for name, extra in {"root": dict(is_staff=True, is_superuser=True), "viewer": dict(is_staff=True)}.items():
    user, _ = User.objects.update_or_create(username=name, defaults=extra)
    user.set_password(name + "-password-1")
    user.save()
    ids[name] = user.pk
User.objects.get(username="viewer").user_permissions.set(
    Permission.objects.filter(content_type__app_label="accounts", codename__startswith="view_")
)
print(json.dumps(ids))
"""


@pytest.fixture(scope="session")
def security_stack(tmp_path_factory):
    if not harness.redis_answers():
        pytest.fail("Redis is not answering on 127.0.0.1:6379: start it (.ci/run does) to run these tests")
    db, lock = harness.claim_redis_db(REDIS_DBS)
    redis.Redis(host="127.0.0.1", port=6379, db=db).flushdb()
    workdir = tmp_path_factory.mktemp("security-stack")
    stack = harness.Stack(
        workdir=workdir,
        redis_url=f"redis://127.0.0.1:6379/{db}",
        database_path=workdir / "db.sqlite3",
        # Every test logs in from 127.0.0.1: lift the per-address login rate (one test lowers it).
        extra_env={"DJANGO_SECRET_KEY": settings.SECRET_KEY, "LOGIN_RATE_PER_MINUTE": "100000"},
    )
    try:
        stack.manage("migrate", "--no-input")
        stack.users = json.loads(stack.manage("shell", "-c", USERS_SCRIPT).stdout.strip().splitlines()[-1])
        yield stack
    finally:
        stack.stop_all()
        lock.close()


@pytest.fixture(scope="session")
def gateway(security_stack):
    return security_stack.daphne()


@pytest.fixture(scope="session")
def second_gateway(security_stack):
    return security_stack.daphne()


@pytest.fixture
def new_user(security_stack):
    """A fresh active user per test (name, password, id): lockouts and revocations stay in their test."""

    def make(prefix: str = "user", **fields) -> tuple[str, str, int]:
        return make_many(prefix, 1, **fields)[0]

    def make_many(prefix: str, count: int, **fields) -> list[tuple[str, str, int]]:
        """Several users with one `manage.py shell` (each start of Django costs seconds)."""
        names = [f"{prefix}-{uuid.uuid4().hex[:8]}" for _ in range(count)]
        script = "".join(harness.make_user_script(name, f"{name}-password-1", **fields) for name in names)
        ids = security_stack.manage("shell", "-c", script).stdout.strip().splitlines()[-count:]
        return [(name, f"{name}-password-1", int(pk)) for name, pk in zip(names, ids, strict=True)]

    make.many = make_many
    return make


def run_python(stack, code: str) -> str:
    """Run Django code against the stack's database (manage.py shell); returns its last output line."""
    output = stack.manage("shell", "-c", code).stdout.strip().splitlines()
    return output[-1] if output else ""


@pytest.fixture(autouse=True)
def print_logs_on_failure(request):
    """The servers' logs under a failed test that used them (unit tests here start no server)."""
    yield
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed and "security_stack" in request.fixturenames:
        print(request.getfixturevalue("security_stack").logs())


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    setattr(item, f"rep_{outcome.get_result().when}", outcome.get_result())


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/security" in str(item.fspath) and "security_stack" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.integration)
