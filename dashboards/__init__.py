"""Grafana dashboards as code: one module per dashboard, each with ``build() -> Dashboard``.

``readiness dashboards build`` writes them next to the code as JSON; ``readiness dashboards push`` sends them
to a Grafana through its HTTP API.
"""

from __future__ import annotations

# The dashboard modules, in build order; each is committed as dashboards/<module>.json (uids: common.UIDS).
MODULES = ("province", "county", "site", "link_quality", "monitor")
# The Grafana folder they are pushed into.
FOLDER_UID = "readiness"
FOLDER_TITLE = "Readiness · آمادگی"
