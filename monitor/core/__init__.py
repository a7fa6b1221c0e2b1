"""The pure core: model, readiness, reasons, schedule, history, forecast, availability, intervals, calendar.

May import: the standard library, pydantic, jdatetime, and ``probes.base`` (the Observation type). No I/O, no clock.
"""
