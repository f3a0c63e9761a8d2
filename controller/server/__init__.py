"""The HTTP service: the agent protocol, the read API, health and metrics (FastAPI + uvicorn)."""

from controller.server.app import create_app

__all__ = ["create_app"]
