"""Development safety and the production settings, checked the way an operator would."""

from __future__ import annotations

import secrets
import subprocess

import pytest

from tests.integration.harness import PYTHON, ROOT

# The production environment README "Security" documents (a database and Redis are named, not used).
PRODUCTION = {
    "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
    "DJANGO_ALLOWED_HOSTS": "trading.example.com",
    "DJANGO_BEHIND_HTTPS_PROXY": "1",
    "DATABASE_URL": "postgres://trading@127.0.0.1:5432/trading",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
}


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    base = {"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "tradingsite.settings"}
    return subprocess.run(
        [PYTHON, "manage.py", *args], cwd=ROOT, env={**base, **env}, capture_output=True, text=True, timeout=120
    )


def test_check_deploy_is_clean_with_the_production_environment():
    result = manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_check_deploy_complains_without_tls_in_front():
    """The check can fail: the same environment without DJANGO_BEHIND_HTTPS_PROXY is not deployable."""
    env = {k: v for k, v in PRODUCTION.items() if k != "DJANGO_BEHIND_HTTPS_PROXY"}

    result = manage("check", "--deploy", "--fail-level", "WARNING", **env)

    assert result.returncode != 0
    assert "SECURE_HSTS_SECONDS" in result.stderr + result.stdout


@pytest.mark.parametrize("debug", ["0", ""])
def test_seed_demo_refuses_unless_debug_is_on(tmp_path, debug):
    env = {"DJANGO_SECRET_KEY": "k" * 50, "DJANGO_DEBUG": debug, "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3"}

    result = manage("seed_demo", **env)

    assert result.returncode != 0
    assert "seed_demo creates users with public passwords" in result.stderr  # not some other failure


def test_make_run_uses_a_secret_of_its_own_that_git_ignores():
    plan = subprocess.run(["make", "-n", "-B", "run"], cwd=ROOT, capture_output=True, text=True, timeout=60).stdout
    ignored = subprocess.run(["git", "check-ignore", ".dev-secret-key"], cwd=ROOT, capture_output=True, text=True)

    assert "secrets.token_urlsafe" in plan and "DJANGO_SECRET_KEY=${DJANGO_SECRET_KEY:-$(cat .dev-secret-key)}" in plan
    assert "--host 127.0.0.1" in plan
    assert ignored.returncode == 0


def test_the_browsable_api_is_off_without_debug(security_stack, gateway):
    """A browser asking for HTML gets JSON from a production-settings instance."""
    import urllib.request

    browser_accept = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    request = urllib.request.Request(f"{gateway.http}/ws/status", headers={"Accept": browser_accept})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.headers["Content-Type"].startswith("application/json")


def test_the_page_carries_csp_frame_and_referrer_policies(gateway):
    import urllib.request

    with urllib.request.urlopen(f"{gateway.http}/", timeout=30) as response:
        headers = response.headers
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "same-origin"
