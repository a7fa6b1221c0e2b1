"""The running service: scheduler, probe cycles, snapshot, timeline and recorder.

May import: ``monitor.core``, ``monitor.config``, ``monitor.store``, ``monitor.web``, ``probes``.
"""
