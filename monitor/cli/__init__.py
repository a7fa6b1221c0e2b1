"""The ``readiness`` command line: one module per group of commands, registered explicitly.

May import: every other package.
"""
