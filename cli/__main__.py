"""`python -m cli` is the admin tool, as `python -m cli.admin`."""

from cli.admin import main

main()
