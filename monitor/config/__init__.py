"""Loading the config and inventories (YAML, CSV), sharding, and building each probe kind's targets.

May import: ``monitor.core``, ``monitor.errors``, ``probes``.
"""
