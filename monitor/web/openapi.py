"""The OpenAPI 3.1 description of every HTTP endpoint, served at /api/v1/openapi.json.

A test compares its paths and methods with the routes of the aiohttp app, and its filter enums with the API's.
"""

from __future__ import annotations

from typing import Any

from monitor import __version__
from monitor.core.actions import ACTION_STATES
from monitor.core.figures import AREAS, NODE, POLLING
from monitor.core.reasons import SITE_STATES
from monitor.web.api import PAGE_DEFAULT, PAGE_MAX


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _text(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"text/plain": {"schema": {"type": "string"}}}}


BAD_FILTER = _json("A parameter or value the API does not know; `allowed` lists the values it accepts.",
                   _ref("FilterError"))
NULLABLE_NUMBER = {"type": ["number", "null"]}
RANGE = {"type": ["array", "null"], "items": NULLABLE_NUMBER, "minItems": 2, "maxItems": 2}


def _filter(name: str, description: str, values: list[str] | None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    if values is not None:
        schema["enum"] = values
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}


FILTERS = {
    "county": _filter("county", "Only this county (any letter case); an unknown county is a 400 that lists them.",
                      None),
    "area": _filter("area", "Only urban or rural sites.", list(AREAS)),
    "state": _filter("state", "Only sites in this state.", list(SITE_STATES)),
    "kind": _filter("kind", "Only polling places or only network nodes.", [POLLING, NODE]),
}

PAGING = [
    {"name": "limit", "in": "query", "required": False, "description": f"Sites per page (default {PAGE_DEFAULT}).",
     "schema": {"type": "integer", "minimum": 1, "maximum": PAGE_MAX}},
    {"name": "cursor", "in": "query", "required": False,
     "description": "The next_cursor of the previous page (same filters).", "schema": {"type": "string"}},
]

TERMINALS = {"type": "object", "required": ["up", "down", "unknown", "total"], "properties": {
    k: {"type": "integer"} for k in ("up", "down", "unknown", "total")}}
COUNTS = {s: {"type": "integer"} for s in SITE_STATES}

SCHEMAS: dict[str, Any] = {
    "Tally": {
        "type": "object", "description": "Polling places of a scope by state; ready_share = ready / total "
                                         "(null without polling places). Network nodes are never counted here.",
        "required": [*SITE_STATES, "total", "ready_share", "terminals"],
        "properties": {**COUNTS, "total": {"type": "integer"}, "ready_share": NULLABLE_NUMBER,
                       "terminals": TERMINALS},
    },
    "NodeTally": {
        "type": "object", "description": "Network nodes by state (no ready share: nodes are means, not ends).",
        "required": [*SITE_STATES, "total", "terminals"],
        "properties": {**COUNTS, "total": {"type": "integer"}, "terminals": TERMINALS},
    },
    "Summary": {
        "allOf": [_ref("Tally"), {"type": "object", "required": ["counties", "areas", "nodes"], "properties": {
            "counties": {"type": "object", "additionalProperties": _ref("Tally")},
            "areas": {"type": "object", "additionalProperties": _ref("Tally")},
            "nodes": _ref("NodeTally")}}],
    },
    "Forecast": {
        "type": "object", "description": "The ready share projected to the deadline. Without the configured minimum "
                                         "of history, status is 'not enough history' and every projection is null.",
        "required": ["status", "share_now", "samples", "history_seconds", "target", "share_at_deadline",
                     "share_at_deadline_range", "at_risk", "all_ready_at", "slope_per_day", "slope_per_day_range"],
        "properties": {
            "status": {"type": "string", "enum": ["ok", "not enough history"]},
            "share_now": NULLABLE_NUMBER, "samples": {"type": "integer"}, "history_seconds": {"type": "number"},
            "target": {"type": "number"}, "share_at_deadline": NULLABLE_NUMBER,
            "share_at_deadline_range": {**RANGE, "description": "[low, high] at the slope's 95% confidence bounds"},
            "at_risk": {"type": ["boolean", "null"], "description": "share_at_deadline < target"},
            "all_ready_at": {"type": ["string", "null"], "format": "date-time",
                             "description": "null: never at this pace (or no forecast)"},
            "slope_per_day": NULLABLE_NUMBER, "slope_per_day_range": RANGE,
        },
    },
    "Header": {
        "type": "object", "required": ["programme", "evaluated_at", "config_version"], "properties": {
            "programme": {"type": "object", "properties": {"name": {"type": "string"},
                                                           "deadline": {"type": "string", "format": "date-time"},
                                                           "timezone": {"type": "string"}}},
            "evaluated_at": {"type": ["string", "null"], "format": "date-time"},
            "config_version": {"type": "string"}},
    },
    "Site": {
        "type": "object", "required": ["id", "name", "county", "area", "kind", "state", "reasons", "terminals_up",
                                       "terminals_unknown", "terminals_total"],
        "properties": {
            "id": {"type": "string"}, "name": {"type": "string"}, "county": {"type": "string"},
            "area": {"type": "string", "enum": list(AREAS)}, "kind": {"type": "string", "enum": [POLLING, NODE]},
            "upstream": {"type": ["string", "null"]}, "state": {"type": "string", "enum": list(SITE_STATES)},
            "reasons": {"type": "array", "items": {"type": "string"}},
            "warnings": {"type": "array", "items": {"type": "string"}},
            "since": {"type": ["string", "null"], "format": "date-time"},
            "terminals_up": {"type": ["integer", "null"], "description": "null: none of them can be seen"},
            "terminals_unknown": {"type": "integer"}, "terminals_total": {"type": "integer"},
            "links": {"type": "array", "items": {"type": "object"}},
            "terminals": {"type": "array", "items": {"type": "object"}},
        },
    },
    "Action": {
        "type": "object", "required": ["id", "county", "owner", "due", "state", "overdue"], "properties": {
            "id": {"type": "string"}, "site": {"type": ["string", "null"], "description": "null: the whole county"},
            "county": {"type": "string"}, "owner": {"type": "string"},
            "due": {"type": "string", "format": "date-time"}, "due_text": {"type": "string"},
            "note": {"type": "string"}, "state": {"type": "string", "enum": list(ACTION_STATES)},
            "overdue": {"type": "boolean"}, "opened_at": {"type": "string", "format": "date-time"},
            "opened_by": {"type": "string"}, "closed_at": {"type": ["string", "null"], "format": "date-time"},
            "closed_by": {"type": ["string", "null"]}, "result": {"type": ["string", "null"]},
            "site_ready_since": {"type": ["string", "null"], "format": "date-time",
                                 "description": "the site is (sustained) ready while the action is open"},
            "history": {"type": "array", "items": {"type": "object"}}},
    },
    "Availability": {
        "type": "object", "description": "Seconds up (ready), down (not ready), other (degraded), unknown (blind, "
                                         "the monitor's own outages included) and in maintenance; ratio = up / "
                                         "(up + down + other), null when nothing was observed.",
        "required": ["up_seconds", "down_seconds", "other_seconds", "unknown_seconds", "maintenance_seconds", "ratio"],
        "properties": {**{k: {"type": "number"} for k in ("up_seconds", "down_seconds", "other_seconds",
                                                           "unknown_seconds", "maintenance_seconds")},
                       "ratio": NULLABLE_NUMBER},
    },
    "AvailabilityGroup": {
        "type": "object", "description": "A scope's polling places over the period (network nodes never counted).",
        "properties": {"name": {"type": "string"}, "sites": {"type": "integer"},
                       "availability": {"type": "object", "additionalProperties": _ref("Availability")},
                       "maintenance_seconds": {"type": "number"}, "blind_seconds": {"type": "number"},
                       "states_at_end": {"type": "object", "properties": COUNTS},
                       "ready_share_at_end": NULLABLE_NUMBER},
    },
    "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
    "FilterError": {
        "type": "object", "required": ["error", "allowed"], "properties": {
            "error": {"type": "string"},
            "allowed": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}}},
    },
}

FORECASTS = {"type": "object", "description": "By scope: province, county:<name>, area:<urban|rural>.",
             "additionalProperties": _ref("Forecast")}


def openapi_document() -> dict[str, Any]:
    """Return the OpenAPI description of the service's HTTP endpoints."""
    return {
        "openapi": "3.1.0",
        "info": {"title": "readiness", "version": __version__,
                 "description": "Polling-site readiness: every figure as monitor/core/figures.py defines it."},
        "paths": {
            "/api/v1/sites": {"get": {
                "summary": "Every reported site, with the summary of the sites the filters keep.",
                "parameters": [*FILTERS.values(), *PAGING],
                "responses": {"200": _json("The sites and their figures.", {"allOf": [_ref("Header"), {
                    "type": "object", "properties": {
                        "summary": _ref("Summary"), "forecast": FORECASTS,
                        "sites": {"type": "array", "items": _ref("Site")},
                        "next_cursor": {"type": ["string", "null"],
                                        "description": "Pass as cursor for the next page; null on the last."},
                        "total": {"type": "integer", "description": "Sites the filters keep, on every page."}}}]}),
                              "400": BAD_FILTER}}},
            "/api/v1/sites/{site}": {"get": {
                "summary": "One site.",
                "parameters": [{"name": "site", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {"200": _json("The site.", _ref("Site")),
                              "404": _json("No such site.", {"type": "object"})}}},
            "/api/v1/summary": {"get": {
                "summary": "The figures: polling places by state and ready share (province, counties, urban/rural), "
                           "network nodes apart, terminals, and the deadline forecast.",
                "parameters": [FILTERS["county"], FILTERS["area"], FILTERS["kind"]],
                "responses": {"200": _json("The figures.", {"allOf": [_ref("Header"), {
                    "type": "object", "properties": {"summary": _ref("Summary"), "forecast": FORECASTS}}]}),
                              "400": BAD_FILTER}}},
            "/api/v1/counties": {"get": {
                "summary": "Each county: its polling places, its network nodes apart, its forecast.",
                "responses": {"200": _json("The counties.", {"allOf": [_ref("Header"), {
                    "type": "object", "properties": {"counties": {"type": "array", "items": {"allOf": [
                        _ref("Tally"), {"type": "object", "properties": {
                            "name": {"type": "string"}, "nodes": _ref("NodeTally"),
                            "forecast": {"oneOf": [_ref("Forecast"), {"type": "null"}]}}}]}}}}]}),
                              "400": BAD_FILTER}}},
            "/api/v1/availability": {"get": {
                "summary": "Availability over a period, from the event store (as the audit report computes it): the "
                           "province, its counties and urban/rural, one county and its sites, or one site. The end "
                           "is clipped to the last recorded moment.",
                "parameters": [
                    _filter("from", "Start: YYYY-MM-DD (Jalali or Gregorian) or an ISO time, in the programme's "
                                    "timezone (default: the store's first record).", None),
                    _filter("to", "End (a bare date includes that day; default: now).", None),
                    _filter("site", "Only this site (its id).", None),
                    _filter("county", "Only this county and its sites (any letter case); not with site.", None)],
                "responses": {"200": _json("Availability over the period.", {"type": "object", "properties": {
                    "period": {"type": "object"}, "scope": {"type": "object"},
                    "notes": {"type": "array", "items": {"type": "string"}},
                    "monitor_outages": {"type": "array", "items": {"type": "object"}},
                    "province": _ref("AvailabilityGroup"),
                    "counties": {"type": "object", "additionalProperties": _ref("AvailabilityGroup")},
                    "areas": {"type": "object", "additionalProperties": _ref("AvailabilityGroup")},
                    "county": _ref("AvailabilityGroup"),
                    "sites": {"type": "array", "items": {"type": "object"}}, "site": {"type": "object"}}}),
                              "400": BAD_FILTER,
                              "503": _json("No event store to read (the monitor runs with --no-store, or the "
                                           "store holds nothing yet).", _ref("Error"))}}},
            "/api/v1/actions": {
                "get": {
                    "summary": "Remediation actions (owner, due date, state, result, who and when) and the unowned "
                               "polling places: not ready longer than the grace time with no open action.",
                    "parameters": [
                        _filter("site", "only this site's actions", None),
                        _filter("county", "only this county's actions (case-insensitive)", None),
                        _filter("owner", "only this owner's actions (case-insensitive)", None),
                        _filter("state", "open, done or cancelled", list(ACTION_STATES)),
                        _filter("overdue", "true: only open actions past their due time", ["true", "false"])],
                    "responses": {"200": _json("The actions and the unowned sites.", {"allOf": [_ref("Header"), {
                        "type": "object", "properties": {"actions": {"type": "array", "items": _ref("Action")},
                                                         "unowned": {"type": "array", "items": {"type": "object"}}}}]}),
                                  "400": BAD_FILTER}},
                "post": {
                    "summary": "Open an action: {site | county, owner, due (Jalali or Gregorian date), note?, by?}.",
                    "responses": {"200": _json("The new action.", {"type": "object", "properties": {
                                      "action": _ref("Action"), "committed": {"type": "boolean"}}}),
                                  "400": _json("The request is refused; error says why.", {"type": "object"}),
                                  "503": _json("No event store keeps actions here.", {"type": "object"})}}},
            "/api/v1/actions/{id}/close": {"post": {
                "summary": "Close an open action: {result (required), state? (done | cancelled), by?}.",
                "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {"200": _json("The closed action.", {"type": "object", "properties": {
                                  "action": _ref("Action"), "committed": {"type": "boolean"}}}),
                              "400": _json("No result, or already closed.", {"type": "object"}),
                              "404": _json("No such action.", {"type": "object"}),
                              "503": _json("No event store keeps actions here.", {"type": "object"})}}},
            "/api/v1/openapi.json": {"get": {
                "summary": "This description.",
                "responses": {"200": _json("OpenAPI 3.1.", {"type": "object"})}}},
            "/metrics": {"get": {
                "summary": "Prometheus exposition (docs/metrics.md lists every metric).",
                "responses": {"200": _text("Prometheus text format 0.0.4.")}}},
            "/": {"get": {
                "summary": "The committee's board (Persian; ?lang=en, ?digits=latin, ?county=NAME).",
                "parameters": [_filter("lang", "fa (default) or en", ["fa", "en"]),
                               _filter("digits", "latin: Latin digits in Persian", ["latin"]),
                               _filter("county", "one county's view with its sites", None)],
                "responses": {"200": {"description": "HTML.", "content": {"text/html": {"schema": {
                    "type": "string"}}}},
                              "400": {"description": "A parameter or value the board does not know."}}}},
            "/sites/{site}": {"get": {
                "summary": "One site's page: links against their thresholds, terminals, reasons, maintenance and "
                           "waivers, owner and open actions, its state over the last days (Persian; ?lang=en).",
                "parameters": [{"name": "site", "in": "path", "required": True, "schema": {"type": "string"}},
                               _filter("lang", "fa (default) or en", ["fa", "en"]),
                               _filter("digits", "latin: Latin digits in Persian", ["latin"])],
                "responses": {"200": {"description": "HTML.", "content": {"text/html": {"schema": {
                    "type": "string"}}}},
                              "400": {"description": "A parameter or value the page does not know."},
                              "404": {"description": "No such site in the inventory."}}}},
            "/static/board/{path}": {"get": {
                "summary": "The board's style, script and font (shipped with the package).",
                "parameters": [{"name": "path", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {"200": {"description": "A static file."}, "404": _text("no such file")}}},
            "/-/healthy": {"get": {"summary": "The process answers.", "responses": {"200": _text("ok")}}},
            "/-/ready": {"get": {"summary": "Readiness has been evaluated at least once.",
                                 "responses": {"200": _text("ready"), "503": _text("no evaluation yet")}}},
            "/-/reload": {"post": {"summary": "Reload the config and inventory.",
                                   "responses": {"200": _text("reloaded"), "400": _text("the new config is bad; "
                                                                                       "the old one runs on"),
                                                 "501": _text("reload is not available here")}}},
        },
        "components": {"schemas": SCHEMAS},
    }
