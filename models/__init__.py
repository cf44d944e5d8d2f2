"""Pydantic models of the HTTP API (camelCase on the wire) and of the artifact spec."""
