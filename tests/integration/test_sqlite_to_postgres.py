"""The README's path from the SQLite default to PostgreSQL: dumpdata, migrate, loaddata.

Users, symbols and orders come across with their ids, and new rows get fresh ids (loaddata resets
PostgreSQL's sequences).
"""

from __future__ import annotations

import json
import subprocess
import uuid

import pytest

from tests.integration import harness
from tests.integration.test_postgres import postgres_answers

# Exactly the README's command ("Moving from SQLite to PostgreSQL").
DUMPDATA = [
    "dumpdata",
    "--natural-foreign",
    "--natural-primary",
    "--exclude=contenttypes",
    "--exclude=auth.permission",
    "--exclude=admin.logentry",
    "--exclude=sessions",
]

ORDER_SCRIPT = """
from decimal import Decimal
from accounts import services
from django.contrib.auth import get_user_model
from marketdata import services as symbols
symbols.symbol_seed_defaults(names=("BTCUSDT",))
user = get_user_model().objects.get(username="mover")
order = services.order_place(user_id=user.pk, symbol="BTCUSDT", side="buy", order_type="limit",
                             quantity=Decimal("0.01"), price=Decimal("1000.00"))
print(order.pk)
"""

CHECK_SCRIPT = """
import json
from django.contrib.auth import get_user_model
from accounts.models import Order
new = get_user_model().objects.create_user("after-move")
print(json.dumps({"users": sorted(get_user_model().objects.values_list("username", flat=True)),
                  "orders": list(Order.objects.values_list("pk", "status", "price")), "new_user_id": new.pk},
                 default=str))
"""


@pytest.fixture
def postgres_database():
    if not postgres_answers():
        pytest.skip("PostgreSQL is not running on 127.0.0.1:5432 on this machine")
    name = f"gateway_move_{uuid.uuid4().hex[:8]}"
    psql = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-c"]
    subprocess.run([*psql, f"CREATE DATABASE {name}"], check=True, capture_output=True)
    yield f"postgres://postgres@127.0.0.1:5432/{name}"
    subprocess.run([*psql, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"], capture_output=True)


def test_a_sqlite_database_moves_to_postgresql(stack, postgres_database):
    sqlite = f"sqlite:///{stack.workdir / f'move-{uuid.uuid4().hex[:6]}.sqlite3'}"
    stack.manage("migrate", "--no-input", DATABASE_URL=sqlite)
    mover_id = int(
        stack.manage("shell", "-c", harness.make_user_script("mover", "mover-password-1"), DATABASE_URL=sqlite)
        .stdout.strip()
        .splitlines()[-1]
    )
    order_id = int(stack.manage("shell", "-c", ORDER_SCRIPT, DATABASE_URL=sqlite).stdout.strip().splitlines()[-1])
    dump = stack.workdir / "move-dump.json"
    stack.manage(*DUMPDATA, f"--output={dump}", DATABASE_URL=sqlite)

    stack.manage("migrate", "--no-input", DATABASE_URL=postgres_database)
    loaded = stack.manage("loaddata", str(dump), DATABASE_URL=postgres_database)
    assert "Installed" in loaded.stdout

    checked = stack.manage("shell", "-c", CHECK_SCRIPT, DATABASE_URL=postgres_database)
    moved = json.loads(checked.stdout.splitlines()[-1])
    assert "mover" in moved["users"]
    assert [order_id, "new", "1000.000000000000"] in moved["orders"]
    assert moved["new_user_id"] > mover_id  # the sequence continues after the loaded rows
