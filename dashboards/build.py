"""`readiness dashboards build|push`: write the dashboards as JSON next to the code, or send them to Grafana.

grafana-client (the optional ``grafana`` extra) is imported only by ``push``: it brings niquests, which
replaces urllib3 for whoever imports it, and nothing else here needs it.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.models import dashboard as dm

from dashboards import MODULES
from dashboards import common as c

HERE = Path(__file__).resolve().parent
EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT = 0, 1, 2
FOLDER_UID = "readiness"
FOLDER_TITLE = "Readiness · آمادگی"


class PushError(Exception):
    """Grafana refused a request or could not be reached."""


def models() -> dict[str, dm.Dashboard]:
    """Return {module name: dashboard model} for every dashboard."""
    return {name: importlib.import_module(f"dashboards.{name}").build() for name in MODULES}


def render() -> dict[str, str]:
    """Return {file name: JSON text} exactly as committed."""
    return {f"{name}.json": c.to_json(model) for name, model in models().items()}


def write(out: Path = HERE) -> list[Path]:
    """Write every dashboard into ``out`` and return the paths."""
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in render().items():
        path = out / name
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths


def stale(out: Path = HERE) -> list[str]:
    """Return the names of files in ``out`` that are missing or differ from what the builders produce."""
    return [name for name, text in render().items()
            if not (out / name).is_file() or (out / name).read_text(encoding="utf-8") != text]


def _api_url(url: str) -> str:
    """Normalise the base URL: grafana-client glues its path straight onto "api", so a sub-path needs a "/"."""
    scheme, _, rest = url.partition("://")
    host, _, path = rest.partition("/")
    path = path.strip("/")
    return f"{scheme}://{host}/{path + '/' if path else ''}"


def push(url: str, token: str, *, folder_uid: str = FOLDER_UID, folder_title: str = FOLDER_TITLE,
         timeout: float = 10.0) -> list[str]:
    """Create the folder if needed and save every dashboard into it (overwriting); return the uids pushed."""
    try:
        from grafana_client import GrafanaApi
        from grafana_client.client import GrafanaClientError, GrafanaException
    except ImportError as exc:
        raise PushError("push needs grafana-client: pip install 'readiness-monitor[grafana]'") from exc

    api = GrafanaApi.from_url(_api_url(url), credential=token, timeout=timeout)
    try:
        try:
            api.folder.get_folder(folder_uid)
        except GrafanaClientError as exc:
            if exc.status_code != 404:
                raise
            api.folder.create_folder(folder_title, uid=folder_uid)
        pushed = []
        for model in models().values():
            body: dict[str, Any] = {"dashboard": json.loads(c.to_json(model)), "folderUid": folder_uid,
                                    "overwrite": True, "message": "readiness dashboards push"}
            api.dashboard.update_dashboard(body)
            pushed.append(str(model.uid))
        return pushed
    except GrafanaException as exc:
        raise PushError(f"Grafana at {url}: {exc.message}") from exc
    except OSError as exc:  # connection refused, DNS, TLS: niquests' errors derive from OSError
        raise PushError(f"Grafana at {url}: {exc}") from exc


def cmd_build(args: argparse.Namespace) -> int:
    out = Path(args.out) if args.out else HERE
    if args.check:
        bad = stale(out)
        for name in bad:
            print(f"stale: {out / name} (run `readiness dashboards build`)", file=sys.stderr)
        return EXIT_FAILURE if bad else EXIT_OK
    for path in write(out):
        print(f"wrote {path}", file=sys.stderr)
    return EXIT_OK


def cmd_push(args: argparse.Namespace) -> int:
    token = os.environ.get(args.token_env, "")
    if not token:
        print(f"error: set {args.token_env} to a Grafana service-account token", file=sys.stderr)
        return EXIT_BAD_INPUT
    if not args.url.startswith(("http://", "https://")):
        print(f"error: --url must start with http:// or https://, got {args.url!r}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        uids = push(args.url, token, folder_uid=args.folder_uid, folder_title=args.folder_title)
    except PushError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    for uid in uids:
        print(f"pushed {uid} to {args.url.rstrip('/')}/d/{uid}", file=sys.stderr)
    return EXIT_OK


def add_dashboards_parser(sub: Any) -> None:
    """Register `readiness dashboards build|push` on the CLI's subparsers."""
    p = sub.add_parser("dashboards", help="Grafana dashboards: regenerate the JSON or push it to Grafana")
    dsub = p.add_subparsers(dest="dashboards_command", required=True)
    q = dsub.add_parser("build", help="write dashboards/*.json from the builders")
    q.add_argument("--out", help="directory to write into (default: the dashboards package)")
    q.add_argument("--check", action="store_true", help="write nothing; exit 1 if a committed file is stale")
    q.set_defaults(func=cmd_build)
    q = dsub.add_parser("push", help="save every dashboard in a Grafana folder through its HTTP API")
    q.add_argument("--url", required=True, help="Grafana base URL, e.g. https://grafana.example:3000")
    q.add_argument("--token-env", default="GRAFANA_TOKEN",
                   help="environment variable holding the service-account token (default GRAFANA_TOKEN)")
    q.add_argument("--folder-uid", default=FOLDER_UID, help=f"folder to save into (default {FOLDER_UID})")
    q.add_argument("--folder-title", default=FOLDER_TITLE, help="title if the folder must be created")
    q.set_defaults(func=cmd_push)


if __name__ == "__main__":
    raise SystemExit(cmd_build(argparse.Namespace(out=None, check="--check" in sys.argv)))
