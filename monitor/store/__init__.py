"""The append-only, hash-chained SQLite event store.

May import: ``monitor.errors`` and the standard library only (the audit verifier loads it alone).
"""
