"""The FastAPI front door: one router per resource, auth, error mapping and the invoke gateway."""
