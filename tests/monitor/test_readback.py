"""The event store read back for the board (monitor/runtime/readback.py): the ready share over time as
monitor/core/figures.py defines it, gaps where the monitor was stopped or blind, bounded points, incremental reads;
one site's timeline."""

from __future__ import annotations

import itertools
from pathlib import Path

from monitor.config.loader import Config, load_config
from monitor.core.figures import PROVINCE, tally
from monitor.core.figures import SiteTerminals as _ST
from monitor.runtime.readback import StoreHistory
from monitor.store.events import EventStore, Transition
from tests.monitor.fixtures import site, write_config

H = 3600.0
T0 = 1_796_000_000.0 - 1_796_000_000.0 % H  # on the hour


def _site(n: int, site_id: str, county: str, kind: str = "polling") -> dict[str, object]:
    return {**site(site_id, n=n, kind=kind), "county": county}


def _config(tmp: Path) -> Config:
    sites = [_site(1, "A1", "North"), _site(2, "A2", "North"), _site(3, "B1", "South"),
             _site(4, "N1", "South", kind="node")]
    return load_config(write_config(tmp, sites))


def _store(tmp: Path) -> EventStore:
    store = EventStore(tmp / "data")
    store.open()
    return store


def _t(at: float, site_id: str, state: str) -> Transition:
    return Transition(at, f"site:{site_id}", None, state, (), "v")


def test_the_share_over_time_is_the_figures_share(tmp_path: Path) -> None:
    """Hourly points of ready polling places over all of them (nodes never counted, no record = not ready)."""
    config = _config(tmp_path)
    store = _store(tmp_path)
    store.append([_t(T0 + 10, "A1", "ready"), _t(T0 + 10, "N1", "ready"), _t(T0 + H + 5, "A2", "ready"),
                  _t(T0 + 2 * H + 5, "B1", "ready"), _t(T0 + 3 * H + 5, "A1", "not_ready")])
    assert store.flush()
    now = T0 + 4 * H + 60
    history = StoreHistory(lambda: config, store.data_dir, clock=lambda: now)
    shares = history.shares()
    province = shares[PROVINCE]
    assert [(t - T0) / H for t, _, _ in province[:4]] == [1, 2, 3, 4]
    assert [(r, n) for _, r, n in province] == [(1, 3), (2, 3), (3, 3), (2, 3), (2, 3)]
    assert province[-1][0] == now  # and the share as recorded now
    assert [(r, n) for _, r, n in shares[("county", "North")]][:3] == [(1, 2), (2, 2), (2, 2)]
    # The same definition as every surface: monitor/core/figures.py on the states recorded at the end
    final = {"A1": "not_ready", "A2": "ready", "B1": "ready", "N1": "ready"}
    fig = tally(config.reported_sites(), lambda s: final[s.id], lambda s: _ST(0, 0, 0, 0))
    assert (province[-1][1], province[-1][2]) == (fig.province.ready, fig.province.total)
    store.close()


def test_no_point_while_the_monitor_was_stopped_or_blind(tmp_path: Path) -> None:
    config = _config(tmp_path)
    store = _store(tmp_path)
    store.append([_t(T0 + 10, "A1", "ready"),
                  Transition(T0 + 5 * H + 1, "monitor", "seeing", "blind", ("monitor.blind",), "v"),
                  Transition(T0 + 7 * H + 1, "monitor", "blind", "seeing", (), "v")])
    assert store.flush()
    history = StoreHistory(lambda: config, store.data_dir, clock=lambda: T0 + 9 * H)
    hours = [round((t - T0) / H) for t, _, _ in history.shares()[PROVINCE]]
    assert 6 not in hours and 7 not in hours and {1, 5, 8, 9} <= set(hours)
    store.close()


def test_reads_are_incremental_and_a_back_dated_row_starts_over(tmp_path: Path) -> None:
    config = _config(tmp_path)
    store = _store(tmp_path)
    store.append([_t(T0 + 10, "A1", "ready")])
    assert store.flush()
    now = [T0 + 3 * H]
    history = StoreHistory(lambda: config, store.data_dir, clock=lambda: now[0], refresh_seconds=60)
    first = history.shares()
    assert history.shares() is first and history.reads == 1  # within refresh_seconds: no read
    store.append([_t(T0 + 3 * H + 100, "A2", "ready")])
    assert store.flush()
    now[0] = T0 + 4 * H
    latest = history.shares()[PROVINCE]
    assert latest[-1] == (T0 + 4 * H, 2, 3) and latest[-2][1:] == (1, 3) and history.reads == 2
    store.append([_t(T0 + 1 * H + 100, "B1", "ready")])  # written later, about the past (the demo's seed)
    assert store.flush()
    now[0] = T0 + 5 * H
    points = history.shares()[PROVINCE]
    assert [r for _, r, _ in points][:3] == [1, 2, 2]  # hour 2 and 3 now count B1
    store.close()


def test_points_stay_bounded(tmp_path: Path) -> None:
    config = _config(tmp_path)
    store = _store(tmp_path)
    store.append([_t(T0 + 10, "A1", "ready")])
    assert store.flush()
    history = StoreHistory(lambda: config, store.data_dir, clock=lambda: T0 + 1000 * H, max_points=100)
    points = history.shares()[PROVINCE]
    assert 50 <= len(points) <= 101
    steps = {b[0] - a[0] for a, b in itertools.pairwise(points[:-1])}  # the last point is "now", off the grid
    assert len(steps) == 1 and steps.pop() >= 8 * H  # a coarser grid, evenly spaced
    store.close()


def test_no_store_no_points(tmp_path: Path) -> None:
    config = _config(tmp_path)
    assert dict(StoreHistory(lambda: config, tmp_path / "none").shares()) == {}
    line = StoreHistory(lambda: config, tmp_path / "none").timeline("A1", T0, T0 + H)
    assert not line.recorded and not line.entities


def test_a_site_timeline(tmp_path: Path) -> None:
    """The state in force at the start, then the changes; the site's links and terminals; nobody else's."""
    config = _config(tmp_path)
    store = _store(tmp_path)
    store.append([_t(T0, "A1", "ready"), _t(T0 + 5 * H, "A1", "not_ready"), _t(T0 + 6 * H, "A10", "ready"),
                  Transition(T0 + 5 * H, "link:A1/primary", "up", "down", ("primary.down",), "v"),
                  Transition(T0 + 5 * H, "link:A10/primary", "up", "down", ("primary.down",), "v"),
                  Transition(T0 + 5 * H, "target:A1/terminal/T1", "up", "down", ("refused",), "v"),
                  _t(T0 + 8 * H, "A1", "ready"),
                  Transition(T0 + 8.5 * H, "monitor", "seeing", "blind", ("monitor.blind",), "v")])
    assert store.flush()
    store.close()
    line = StoreHistory(lambda: config, store.data_dir).timeline("A1", T0 + 2 * H, T0 + 9 * H)
    site_line = line.entities["site:A1"]
    assert [(c.at - T0, c.state) for c in site_line] == [(2 * H, "ready"), (5 * H, "not_ready"), (8 * H, "ready")]
    assert line.entities["link:A1/primary"][0].reasons == ("primary.down",)
    assert set(line.entities) == {"site:A1", "link:A1/primary", "target:A1/terminal/T1"}
    assert line.outages == [(T0 + 8.5 * H, T0 + 9 * H)]  # blind since then
