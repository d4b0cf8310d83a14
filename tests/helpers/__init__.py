"""Helpers shared by the tests: processes, servers, gates, tiny training configs.

Imported by test modules and conftest.py; they hold no fixtures (those live in conftest.py).
"""
