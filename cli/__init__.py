"""Operator command-line tools (never deployed): `python -m cli.admin --help`."""
