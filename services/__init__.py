"""Domain logic. Services raise `services.errors` types and never know about HTTP."""
