"""How the command line reaches a running service's HTTP API: Basic auth and a trusted CA, for `status` and
`actions` alike (a service with a web config asks for a user; its TLS certificate may come from a private CA).

The password is read from an environment variable, never from the command line, where it would sit in the shell
history and the process list.
"""

from __future__ import annotations

import argparse
import base64
import os
import ssl

from monitor.errors import ConfigError, Problem

PASSWORD_ENV = "READINESS_WEB_PASSWORD"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add --web.user, --web.password-env and --web.ca-file to a command that takes --url."""
    p.add_argument("--web.user", dest="web_user", metavar="USER",
                   help="Basic auth user of a service with a web config (the password from the environment)")
    p.add_argument("--web.password-env", dest="web_password_env", metavar="NAME", default=PASSWORD_ENV,
                   help=f"the environment variable holding --web.user's password (default {PASSWORD_ENV})")
    p.add_argument("--web.ca-file", dest="web_ca_file", metavar="FILE",
                   help="trust this CA for an https:// --url (default: the system's)")


def basic_auth(user: str, password: str) -> dict[str, str]:
    """Return the Authorization header of HTTP Basic auth (RFC 7617, UTF-8)."""
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def headers_of(args: argparse.Namespace) -> dict[str, str]:
    """Return the Authorization header ``--web.user`` asks for (none without it); bad input without the password."""
    if not getattr(args, "web_user", None):
        return {}
    password = os.environ.get(args.web_password_env)
    if password is None:
        raise ConfigError([Problem(args.web_password_env, f"--web.user {args.web_user} needs the password in the "
                                   f"environment variable {args.web_password_env}", field="--web.password-env")])
    return basic_auth(args.web_user, password)


def context_of(ca_file: str | None) -> ssl.SSLContext | None:
    """Return a TLS context trusting ``ca_file`` (None: the system's CAs); bad input when it is no CA bundle."""
    if ca_file is None:
        return None
    try:
        return ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError([Problem(ca_file, f"cannot load it as CA certificates: {exc}",
                                   field="--web.ca-file")]) from None


def refusal_hint(code: int, authenticated: bool) -> str:
    """Return what to do about a 401 or 403 answer ("" for other codes)."""
    if code == 401:
        return (" (wrong user or password)" if authenticated else
                f" (it asks for a user: give --web.user and the password in {PASSWORD_ENV})")
    if code == 403:
        return " (this user may read but not change anything: an admin of the web config may)"
    return ""
