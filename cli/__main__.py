"""`python -m cli ...` is the same as `wapi ...`."""

from cli import app

app()
