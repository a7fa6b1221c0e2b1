"""`readiness dashboards build|push`: write the dashboards as JSON next to the code, or send them to Grafana.

grafana-client (the optional ``grafana`` extra) is imported only by ``push``: it brings niquests, which
replaces urllib3 for whoever imports it, and nothing else here needs it.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.models import dashboard as dm

from dashboards import FOLDER_TITLE, FOLDER_UID, MODULES
from dashboards import common as c

HERE = Path(__file__).resolve().parent


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


def main(argv: list[str]) -> int:
    """Write (or with ``--check`` compare) every dashboard's JSON next to its builder."""
    bad = stale(HERE) if "--check" in argv else []
    if "--check" not in argv:
        write(HERE)
    for name in bad:
        print(f"stale: {HERE / name} (run `readiness dashboards build`)", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
