"""Domain logic. Services raise `workload_api.errors` types and never know about HTTP."""
