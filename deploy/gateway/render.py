"""Render the gateway config for local mode: shop.conf (the same template the nginx image renders with
envsubst) and the main nginx.conf around it. Only upper-case placeholders in dollar-braces are settings; $name stays nginx's.

    python deploy/gateway/render.py OUT_DIR LOG_DIR   (settings from the environment)
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from shop_events.registry import SERVICES

HERE = Path(__file__).resolve().parent
PLACEHOLDER = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")

DEFAULTS = {
    "GATEWAY_PORT": "8080",
    "GATEWAY_RATE_LIMIT": "500",
    "GATEWAY_RATE_BURST": "1000",
    "GATEWAY_LOGIN_RATE_LIMIT": "1",
    "GATEWAY_LOGIN_RATE_BURST": "5",
    **{f"{s.upper}_UPSTREAM": f"127.0.0.1:{s.port}" for s in SERVICES},
}


def render(template: str, values: dict[str, str]) -> str:
    missing = sorted({name for name in PLACEHOLDER.findall(template) if name not in values})
    if missing:
        raise SystemExit(f"gateway template needs settings: {', '.join(missing)}")
    return PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


def replicas(upstream: str) -> str:
    """"a,b" (local mode's SHOP_REPLICAS): one server line each, inside the template's `server ... max_fails=0;`."""
    return " max_fails=0; server ".join(address.strip() for address in upstream.split(","))


def main(out_dir: str, log_dir: str) -> None:
    out = Path(out_dir).resolve()
    (out / "tmp").mkdir(parents=True, exist_ok=True)
    values = {name: os.environ.get(name) or default for name, default in DEFAULTS.items()}
    for name in [n for n in values if n.endswith("_UPSTREAM")]:
        values[name] = replicas(values[name])
    values["GATEWAY_DIR"] = str(out)
    values["LOG_DIR"] = str(Path(log_dir).resolve())
    # As root, nginx would hand its workers to "nobody"; keep them as the user that owns the state folder.
    values["NGINX_USER"] = "user root;" if os.geteuid() == 0 else ""
    # The operations page, where the template's relative `alias ops/` finds it (nginx runs with -p OUT_DIR).
    ops = out / "ops"
    if ops.is_symlink() or ops.exists():
        ops.unlink()
    ops.symlink_to(HERE.parent / "ops", target_is_directory=True)
    (out / "shop.conf").write_text(render((HERE / "shop.conf.template").read_text(), values))
    (out / "nginx.conf").write_text(render((HERE / "nginx-local.conf.template").read_text(), values))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    main(sys.argv[1], sys.argv[2])
