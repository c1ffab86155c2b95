"""The admin over the network: a staff member who may only view bots cannot stop one."""

from __future__ import annotations

from tests.security.admin_session import AdminSession
from tests.security.conftest import run_python

BOT_SCRIPT = """
from accounts.models import Bot
bot = Bot.objects.create(owner_id={owner}, name="victim's DCA", symbol="BTCUSDT",
                         params={{"quote_amount": "100", "interval_seconds": 3600}}, status=Bot.Status.RUNNING)
print(bot.pk)
"""


def bot_status(stack, bot_id: int) -> str:
    return run_python(stack, f"from accounts.models import Bot; print(Bot.objects.get(pk={bot_id}).status)")


def signed_in(gateway, username: str) -> AdminSession:
    admin = AdminSession(gateway.http)
    status, html = admin.login(username, f"{username}-password-1")
    assert status == 200 and "Log out" in html, html[:500]
    return admin


def test_a_view_only_staff_user_cannot_stop_a_bot(gateway, security_stack, new_user):
    _, _, owner = new_user("owner")
    bot_id = int(run_python(security_stack, BOT_SCRIPT.format(owner=owner)))
    viewer = signed_in(gateway, "viewer")
    status, html = viewer.request("/admin/accounts/bot/")
    assert status == 200 and "victim&#x27;s DCA" in html  # it may look
    assert "bot_stop" not in html  # and is offered no action

    status, _ = viewer.action("/admin/accounts/bot/", "bot_stop", [bot_id])

    assert status in {200, 403}
    assert bot_status(security_stack, bot_id) == "running"
    # The same request from a staff member who may change bots does stop it.
    signed_in(gateway, "root").action("/admin/accounts/bot/", "bot_stop", [bot_id])
    assert bot_status(security_stack, bot_id) == "stopped"
