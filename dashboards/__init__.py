"""Grafana dashboards as code: one module per dashboard, each with ``build() -> Dashboard``.

``readiness dashboards build`` writes them next to the code as JSON; ``readiness dashboards push`` sends them
to a Grafana through its HTTP API.
"""

from __future__ import annotations

# Module name -> committed JSON file name. The uid of each is in dashboards.common.UIDS.
MODULES = ("province", "county", "site", "link_quality", "monitor")
