"""Audit bundles: format, export, verification, figures, HTML report, spreadsheet, signing.

May import: ``monitor.core``, ``monitor.config``, ``monitor.store``. ``verify`` and ``bundle`` import only
the store's chain, signing and errors, so an auditor's machine loads no probe library.
"""
