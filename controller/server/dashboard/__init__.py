"""The read-only dashboard at `/`: compliance per baseline, pending approvals, patch status of
the last 30 days, recent alerts and the applied revision, for the read token's tenant scope.

Server-rendered HTML with inline CSS and SVG: no script, nothing loaded from anywhere.
"""

from controller.server.dashboard.routes import LoginForm, router

__all__ = ["LoginForm", "router"]
