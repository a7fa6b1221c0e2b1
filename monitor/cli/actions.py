"""``readiness actions add|list|close``: remediation actions, through a running service or its stopped store.

With ``--url`` the command goes through the service's API (the service is the store's one writer); a service with
a web config takes ``--web.user`` (the password from READINESS_WEB_PASSWORD) and ``--web.ca-file``, as `status`.
With ``--data-dir`` (or ``--config``, whose data_dir is used) the service must be stopped: the command takes
the store's writer lock itself, waiting ``--wait`` seconds for it, so two writers never fork the chain.
"""

from __future__ import annotations

import argparse
import getpass
import json
import socket
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from monitor.cli import webclient
from monitor.cli.exits import EXIT_OK
from monitor.errors import ReadinessError


def _who(args: argparse.Namespace) -> str:
    if args.by:
        return str(args.by)
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def _call(args: argparse.Namespace, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """Ask the service at ``args.url`` (with --web.user's credentials and --web.ca-file's CA, when given)."""
    url = args.url
    full = url.rstrip("/") + path
    auth = webclient.headers_of(args)
    data = None if body is None else json.dumps(body, ensure_ascii=False).encode("utf-8")
    request = urllib.request.Request(full, data=data, method=method,
                                     headers={**auth, **({"Content-Type": "application/json"} if data else {})})
    try:
        with urllib.request.urlopen(request, timeout=30, context=webclient.context_of(args.web_ca_file)) as response:
            raw = response.read()
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read()).get("error") or exc.reason
        except (ValueError, AttributeError):
            message = exc.reason
        raise ReadinessError(f"{full}: HTTP {exc.code}: {message}{webclient.refusal_hint(exc.code, bool(auth))}") \
            from None
    except (urllib.error.URLError, OSError) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        raise ReadinessError(f"cannot reach the readiness service at {url}: {reason}") from None
    doc = json.loads(raw)
    if not isinstance(doc, dict):
        raise ReadinessError(f"{full} did not return a JSON object")
    return doc


class _Local:
    """The stopped service's store, opened with its writer lock (waiting for it up to ``wait`` seconds)."""

    def __init__(self, args: argparse.Namespace) -> None:
        from monitor.config.loader import load_config
        from monitor.errors import StoreError
        from monitor.runtime.actions import ActionDesk
        from monitor.store.events import EventStore

        self.config = load_config(args.config) if args.config else None
        data_dir = args.data_dir or (self.config.data_dir if self.config else None)
        if data_dir is None:
            raise ReadinessError("give --url URL (a running service), or --data-dir DIR / --config C (stopped)")
        deadline = time.monotonic() + args.wait
        told = False
        while True:
            store = EventStore(data_dir)
            try:
                store.open()
                break
            except StoreError as exc:
                if "in use" not in str(exc) or time.monotonic() >= deadline:
                    if "in use" in str(exc):
                        raise ReadinessError(f"{exc}: the store's writer lock is held (a running service? then use "
                                             f"--url; or wait longer with --wait)") from None
                    raise
                if not told:
                    print(f"waiting for the store's writer lock ({exc})", file=sys.stderr)
                    told = True
                time.sleep(0.2)
        self.store = store
        self.desk = ActionDesk(store, lambda: self.config, time.time)

    def __enter__(self) -> _Local:
        return self

    def __exit__(self, *exc: object) -> None:
        self.store.close()


def _local_doc(local: _Local, query: dict[str, str]) -> dict[str, Any]:
    from monitor.core.actions import select

    now = time.time()
    listed = select(local.desk.actions(), now, state=query.get("state"),
                    overdue=True if query.get("overdue") == "true" else None)
    return {"actions": [_plain(a, now) for a in listed]}


def _plain(a: Any, now: float) -> dict[str, Any]:
    from datetime import UTC, datetime

    def iso(ts: float | None) -> str | None:
        return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")
    return {"id": a.id, "site": a.site, "county": a.county, "owner": a.owner, "due": iso(a.due),
            "due_text": a.due_text, "note": a.note, "state": a.state, "overdue": a.overdue(now),
            "opened_at": iso(a.opened_at), "opened_by": a.opened_by, "closed_at": iso(a.closed_at),
            "closed_by": a.closed_by, "result": a.result or None, "site_ready_since": None}


def cmd_add(args: argparse.Namespace) -> int:
    target = args.site
    if args.url:
        body = {"owner": args.owner, "due": args.due, "note": args.note or "", "by": _who(args)}
        body["county" if target.startswith("county:") else "site"] = target.removeprefix("county:")
        doc = _call(args, "POST", "/api/v1/actions", body)
        action_id = doc["action"]["id"]
    else:
        from monitor.core.actions import ActionError

        with _Local(args) as local:
            if local.config is None:
                raise ReadinessError("actions add --data-dir needs --config too (the site's county, the timezone)")
            try:
                action, durable = local.desk.add(target, owner=args.owner, due=args.due, note=args.note or "",
                                                 by=_who(args))
            except ActionError as exc:
                raise ReadinessError(str(exc)) from None
            if not durable:
                raise ReadinessError(f"action {action.id} could not be written: {local.store.status.error}")
            action_id = action.id
    print(action_id)
    return EXIT_OK


def cmd_close(args: argparse.Namespace) -> int:
    state = "cancelled" if args.cancel else "done"
    if args.url:
        doc = _call(args, "POST", f"/api/v1/actions/{urllib.parse.quote(args.id)}/close",
                    {"result": args.result, "by": _who(args), "state": state})
        action = doc["action"]
        print(f"{action['id']} {action['state']}")
        return EXIT_OK
    from monitor.core.actions import ActionError

    with _Local(args) as local:
        try:
            closed, durable = local.desk.close(args.id, result=args.result, by=_who(args), state=state)
        except KeyError:
            raise ReadinessError(f"no action {args.id!r}") from None
        except ActionError as exc:
            raise ReadinessError(str(exc)) from None
        if not durable:
            raise ReadinessError(f"action {closed.id} could not be written: {local.store.status.error}")
    print(f"{closed.id} {closed.state}")
    return EXIT_OK


def cmd_list(args: argparse.Namespace) -> int:
    query: dict[str, str] = {}
    if args.open:
        query["state"] = "open"
    if args.overdue:
        query["overdue"] = "true"
    if args.url:
        doc = _call(args, "GET", "/api/v1/actions" + ("?" + urllib.parse.urlencode(query) if query else ""))
    else:
        with _Local(args) as local:
            doc = _local_doc(local, query)
    if args.json:
        print(json.dumps(doc, ensure_ascii=False, indent=1))
        return EXIT_OK
    for a in doc["actions"]:
        flags = " OVERDUE" if a["overdue"] else ""
        if a.get("site_ready_since"):
            flags += f" (site ready since {a['site_ready_since']})"
        what = a["site"] or f"county:{a['county']}"
        tail = f" — {a['result']}" if a.get("result") else (f" — {a['note']}" if a.get("note") else "")
        print(f"{a['id']}\t{a['state']}{flags}\t{what}\t{a['owner']}\tdue {a['due_text']}{tail}")
    for u in doc.get("unowned", []):
        print(f"unowned\t{u['site']}\t{u['county']}\tnot ready since {u['not_ready_since']}")
    return EXIT_OK


def _where(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--url", help="a running readiness service (its API writes the action)")
    g.add_argument("--data-dir", help="the event store of a stopped service (its writer lock is taken)")
    p.add_argument("--config", help="the config (site counties, timezone; its data_dir when --data-dir is not given)")
    p.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                   help="with --data-dir: wait this long for the store's writer lock (default: do not wait)")
    webclient.add_arguments(p)  # with --url: a service with a web config asks for a user, maybe over TLS


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``actions add|list|close``."""
    p = sub.add_parser("actions", help="remediation actions: owners, due dates, results")
    asub = p.add_subparsers(dest="actions_command", required=True)

    q = asub.add_parser("add", help="open an action for a site (or county:NAME); prints its id")
    q.add_argument("site", help="site id, or county:NAME for a whole county")
    q.add_argument("--owner", required=True)
    q.add_argument("--due", required=True, metavar="DATE", help="YYYY-MM-DD[ HH:MM], Jalali (1404-12-05) or Gregorian")
    q.add_argument("--note")
    q.add_argument("--by", help="who opens it (default: user@host)")
    _where(q)
    q.set_defaults(func=cmd_add)

    q = asub.add_parser("list", help="list actions (and unowned sites, from a running service)")
    q.add_argument("--open", action="store_true", help="only open actions")
    q.add_argument("--overdue", action="store_true", help="only overdue actions")
    q.add_argument("--json", action="store_true")
    _where(q)
    q.set_defaults(func=cmd_list)

    q = asub.add_parser("close", help="close an action with its result")
    q.add_argument("id")
    q.add_argument("--result", required=True, help="what was done (required)")
    q.add_argument("--cancel", action="store_true", help="close it as cancelled rather than done")
    q.add_argument("--by", help="who closes it (default: user@host)")
    _where(q)
    q.set_defaults(func=cmd_close)
