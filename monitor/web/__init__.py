"""HTTP: the aiohttp app, the status page, the JSON API and the metrics exposition, all read from a snapshot.

May import: ``monitor.core``, ``monitor.config``, ``monitor.runtime.snapshot``.
"""
