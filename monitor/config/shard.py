"""Deterministic sharding of sites across instances: rendezvous (highest random weight) hashing."""

from __future__ import annotations

import hashlib

from monitor.config.loader import Config, inventory_cells
from monitor.errors import ConfigError, Problem


def parse_shard(text: str) -> tuple[int, int]:
    """Parse ``K/N`` (1 <= K <= N)."""
    try:
        k, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise ConfigError([Problem("--shard", f"{text!r} is not K/N, e.g. 1/4")]) from None
    if not 1 <= k <= n:
        raise ConfigError([Problem("--shard", f"{text!r}: K must be between 1 and N")])
    return k, n


def owner(site_id: str, n: int) -> int:
    """Return the shard (1..n) that owns ``site_id``: the one with the highest hash weight."""
    weights = [(hashlib.blake2b(f"{shard}:{site_id}".encode(), digest_size=8).digest(), shard)
               for shard in range(1, n + 1)]
    return max(weights)[1]


def select_shard(config: Config, text: str) -> Config:
    """Return ``config`` with only the sites of shard ``text`` (upstream nodes they need stay in)."""
    k, n = parse_shard(text)
    by_id = config.site_map()
    keep = {s.id for s in config.sites if owner(s.id, n) == k}
    # A site's readiness depends on its upstream's state, so an instance also watches those nodes;
    # but only the shard that owns a site reports it, so roll-ups never count a site twice.
    owned = set(keep)
    for site_id in owned:
        node = by_id[site_id]
        while node.upstream and node.upstream in by_id:
            keep.add(node.upstream)
            node = by_id[node.upstream]
    return config.model_copy(update={"sites": tuple(s for s in config.sites if s.id in keep),
                                     "watch_only": frozenset(keep - owned), "shard": (k, n),
                                     "inventory_cells": inventory_cells(config.sites)})
