"""`python -m workload_api ...` is the same as `wapi ...`."""

from workload_api.cli import app

app()
