"""Where the deployment files are, and rendering them as an operator would (envsubst, path edits)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
NGINX_TEMPLATE = DEPLOY / "nginx" / "trading.conf.template"
NGINX_VARIABLES = ("LISTEN", "SERVER_NAME", "STATIC_ROOT", "DAPHNE_SERVERS")
PLACEHOLDER = re.compile(r"\$\{([A-Z_]+)\}")


def render(text: str, values: dict[str, str]) -> str:
    """What `envsubst '${A} ${B}'` does: only the named variables are replaced (nginx's own $vars stay)."""
    missing = set(PLACEHOLDER.findall(text)) - set(values)
    if missing:
        raise KeyError(f"no value for {sorted(missing)}")
    return PLACEHOLDER.sub(lambda m: values[m.group(1)], text)


def render_nginx_site(*, listen: str, daphne_ports: list[int], static_root: Path, server_name: str = "_") -> str:
    servers = " ".join(f"server 127.0.0.1:{port} max_fails=0;" for port in daphne_ports)
    values = {"LISTEN": listen, "SERVER_NAME": server_name, "STATIC_ROOT": str(static_root), "DAPHNE_SERVERS": servers}
    return render(NGINX_TEMPLATE.read_text(), values)


def nginx_main_conf(workdir: Path, site: Path) -> str:
    """A whole nginx.conf around the site, with every file it writes in `workdir` (no root paths)."""
    temp = workdir / "temp"
    for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (temp / name).mkdir(parents=True, exist_ok=True)
    # As root, nginx's workers would run as nobody, who cannot read a test's private temp folder.
    user = "user root root;" if os.geteuid() == 0 else ""
    return f"""
{user}
daemon off;
worker_processes 1;
pid {workdir}/nginx.pid;
error_log {workdir}/error.log info;
events {{ worker_connections 512; }}
http {{
    include /etc/nginx/mime.types;
    access_log {workdir}/access.log;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    include {site};
}}
"""


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None)


def systemd_units_for(target: Path) -> list[Path]:
    """The units with /srv/trading replaced by this checkout and its interpreter (what an operator edits)."""
    venv_bin = str(Path(sys.executable).parent)
    written = []
    for unit in sorted((DEPLOY / "systemd").glob("*.service")) + sorted((DEPLOY / "systemd").glob("*.target")):
        text = unit.read_text().replace("/srv/trading/.venv/bin/python", sys.executable)
        text = text.replace("/srv/trading/.venv/bin", venv_bin).replace("/srv/trading", str(ROOT))
        path = target / unit.name
        path.write_text(text)
        written.append(path)
    return written


def run(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=120, check=False, **kwargs)
