"""The web console: server-rendered pages under `/console/` of the API process, acting through
the typed client with the signed-in user's key (see console/app.py and docs/console.md)."""

from console.app import create_console, mount

__all__ = ["create_console", "mount"]
