"""Workload API: a self-hostable control plane for containerized AI services."""

__version__ = "0.1.0"
