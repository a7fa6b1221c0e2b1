"""What a config asks of this host: the source addresses links send from exist here, and a backup sent from
an address really leaves through another interface than its primary.

Not part of loading (a config is valid on any machine); ``check`` and ``run`` call it on the machine that
will probe. The host is asked through two functions that tests replace.
"""

from __future__ import annotations

from collections.abc import Callable

from monitor.config.loader import Config
from monitor.errors import Problem
from probes.route import has_address, is_address, output_interface


def check_host(config: Config, *, address_exists: Callable[[str], bool] = has_address,
               route: Callable[[str, str | None], str | None] = output_interface,
               ) -> tuple[list[Problem], list[Problem]]:
    """Return (errors, warnings): sources this host does not have; backups whose path is not proven."""
    errors: list[Problem] = []
    warnings: list[Problem] = []
    file = config.source or "config"

    def interface(destination: str, source: str | None) -> str | None:
        if source and not is_address(source):
            return source  # bound to the device
        try:
            return route(destination, source)
        except (OSError, ValueError):
            return None

    for site in config.sites:
        primary = next((x for x in site.links if x.role == "primary"), None)
        for link in site.links:
            if not is_address(link.source):
                continue
            assert link.source is not None
            try:
                exists = address_exists(link.source)
            except (OSError, ValueError):
                continue  # cannot tell here: say nothing rather than guess
            where = f"links.{link.role}.source"
            if not exists:
                errors.append(Problem(file, f"{link.source} is not an address of this host (link {link.role})",
                                      site=site.id, field=where))
                continue
            if primary is None or link is primary:
                continue
            mine = interface(link.address, link.source)
            if mine is not None and mine == interface(primary.address, primary.source):
                warnings.append(Problem(
                    file, f"echoes to {link.address} from {link.source} leave through {mine}, the primary's "
                    f"interface: the {link.role} path is not proven (add a policy route, `ip rule from "
                    f"{link.source} lookup <table>`, or give an interface name as source)",
                    site=site.id, field=where))
    return errors, warnings
