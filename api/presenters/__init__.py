"""Presenters: how catalog rows look on the wire, one module per resource."""
