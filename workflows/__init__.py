"""Durable entity workflows: one per workload and one per deployment. No I/O in here."""
