"""The built-in demo province: inventory, real terminal listeners, simulated SNMP agents.

May import: everything below ``monitor.cli``.
"""
