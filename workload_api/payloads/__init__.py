"""Payloads that cross Temporal boundaries: one model per workflow, update and activity call.

They are recorded in workflow histories, so they never hold secret values.
"""
