"""The files in deploy/ are valid for the tools that read them: nginx, systemd, Prometheus, Grafana, Compose."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
import yaml

from tests.deploy.files import (
    DEPLOY,
    NGINX_TEMPLATE,
    NGINX_VARIABLES,
    nginx_binary,
    nginx_main_conf,
    render,
    render_nginx_site,
    run,
    systemd_units_for,
)

PROMETHEUS = DEPLOY / "prometheus"
NOT_METRICS = {"by", "without", "on", "ignoring", "le", "sum", "rate", "increase", "max", "count", "absent", "and"}
NOT_METRICS |= {"or"}


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool is not installed (Debian's `prometheus` package has it; .ci/run installs it)")
    return path


def test_alert_rules_pass_promtool_check():
    result = run([promtool(), "check", "rules", str(PROMETHEUS / "alerts.yml")])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_alert_rules_fire_when_they_should_promtool_unit_tests():
    result = run([promtool(), "test", "rules", "alerts.test.yml"], cwd=PROMETHEUS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_prometheus_config_is_valid():
    result = run([promtool(), "check", "config", str(PROMETHEUS / "prometheus.yml")])
    assert result.returncode == 0, result.stdout + result.stderr


def exported_metric_names() -> set[str]:
    """Every series name the processes export (histograms and counters with their suffixes), plus `up`."""
    from prometheus_client import REGISTRY

    import leadership.metrics  # noqa: F401  (registers the worker's metrics)
    import realtime.metrics  # noqa: F401

    names = {"up"}
    for family in REGISTRY.collect():
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
        if family.type == "histogram":
            names.update(f"{family.name}_{suffix}" for suffix in ("bucket", "sum", "count"))
        if family.type == "counter":
            names.add(f"{family.name}_total")
    return names


def metric_names_in(expr: str) -> set[str]:
    without_strings = re.sub(r'"[^"]*"', '""', expr)
    without_labels = re.sub(r"\{[^}]*\}", "", without_strings)
    without_ranges = re.sub(r"\[[^\]]*\]", "", without_labels)
    without_groupings = re.sub(r"\b(by|without)\s*\([^)]*\)", "", without_ranges)
    words = set(re.findall(r"\b([a-z_][a-z0-9_]*)\b", without_groupings))
    return {w for w in words if w not in NOT_METRICS and not re.fullmatch(r"histogram_quantile", w)}


def alert_expressions() -> list[str]:
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


def dashboard_expressions() -> list[str]:
    dashboard = json.loads((DEPLOY / "grafana" / "trading-gateway.json").read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


@pytest.mark.parametrize("source", ["alerts", "dashboard"])
def test_alerts_and_dashboard_name_only_metrics_the_processes_export(source):
    expressions = alert_expressions() if source == "alerts" else dashboard_expressions()
    assert expressions
    known = exported_metric_names()
    unknown = {name for expr in expressions for name in metric_names_in(expr)} - known
    assert not unknown, f"{source} use metrics nobody exports: {sorted(unknown)}"


def test_the_dashboard_is_importable_grafana_json():
    dashboard = json.loads((DEPLOY / "grafana" / "trading-gateway.json").read_text())
    assert dashboard["uid"] and dashboard["title"]
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}"
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"])


def test_the_nginx_template_has_only_its_documented_variables():
    placeholders = set(re.findall(r"\$\{([A-Z_]+)\}", NGINX_TEMPLATE.read_text()))
    assert placeholders == set(NGINX_VARIABLES)
    with pytest.raises(KeyError, match="LISTEN"):
        render(NGINX_TEMPLATE.read_text(), {"SERVER_NAME": "x", "STATIC_ROOT": "/x", "DAPHNE_SERVERS": "server a:1;"})


def test_the_rendered_nginx_site_passes_nginx_t(tmp_path):
    nginx = nginx_binary()
    if nginx is None:
        pytest.skip("nginx is not installed (Debian's `nginx` package; .ci/run installs it)")
    site = tmp_path / "site.conf"
    site.write_text(render_nginx_site(listen="127.0.0.1:8080", daphne_ports=[8001, 8002], static_root=tmp_path))
    conf = tmp_path / "nginx.conf"
    conf.write_text(nginx_main_conf(tmp_path, site))
    result = run([nginx, "-t", "-c", str(conf), "-p", str(tmp_path)])
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


def test_the_systemd_units_pass_systemd_analyze_verify(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed on this machine")
    units = systemd_units_for(tmp_path)
    names = [u.name.replace("@.service", "@8001.service") for u in units if u.suffix == ".service"]
    result = run([analyze, "verify", "--man=no", *names], cwd=tmp_path)
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


def test_the_systemd_units_run_the_projects_commands():
    daphne = (DEPLOY / "systemd" / "trading-daphne@.service").read_text()
    worker = (DEPLOY / "systemd" / "trading-worker@.service").read_text()
    daphne_command = r"ExecStart=.*daphne -b 127\.0\.0\.1 -p %i --proxy-headers .*tradingsite\.asgi:application"
    assert re.search(daphne_command, daphne)
    assert "ExecStart=/srv/trading/.venv/bin/python manage.py runstream" in worker
    for unit in (daphne, worker):
        assert "EnvironmentFile=/etc/trading/env" in unit and "Restart=always" in unit


def compose_command() -> list[str]:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True, check=False).returncode == 0:
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    if legacy:
        return [legacy]
    pytest.skip("neither the docker compose plugin nor docker-compose is installed")


def test_the_compose_file_is_valid_and_has_the_production_topology():
    command = compose_command()
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "DJANGO_SECRET_KEY": "compose-config-check", "HOME": "/tmp"}
    result = run([*command, "-f", str(DEPLOY / "compose.yaml"), "config"], env=env)
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    services = config["services"]
    assert {"nginx", "daphne1", "daphne2", "worker1", "worker2", "redis", "postgres", "migrate"} <= set(services)
    for name in ("daphne1", "daphne2", "worker1", "worker2"):
        environment = services[name]["environment"]
        assert environment["DATABASE_URL"].startswith("postgres://")
        assert environment["REDIS_URL"] == "redis://redis:6379/0"
    assert "runstream" in services["worker1"]["command"] and "runstream" in services["worker2"]["command"]
    assert services["nginx"]["environment"]["DAPHNE_SERVERS"].count("server daphne") == 2


def test_the_compose_file_needs_a_secret_key():
    command = compose_command()
    result = run([*command, "-f", str(DEPLOY / "compose.yaml"), "config"], env={"PATH": "/usr/local/bin:/usr/bin:/bin"})
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr


def test_the_image_carries_every_app_of_the_project():
    """A new app added to INSTALLED_APPS but not copied into the image would fail only in production."""
    from django.conf import settings

    dockerfile = (DEPLOY / "Dockerfile").read_text()
    copied = set(re.findall(r"^COPY (\S+) ", dockerfile, re.MULTILINE))
    ours = {app.split(".")[0] for app in settings.INSTALLED_APPS if (DEPLOY.parent / app.split(".")[0]).is_dir()}
    assert ours, "no project apps found"
    needed = ours | {"tradingsite", "templates", "static", "manage.py", "requirements.txt"}
    assert needed <= copied, f"not copied into the image: {sorted(needed - copied)}"
