"""Runtimes run the containers of a workload. One module per runtime, one interface (`base`)."""
