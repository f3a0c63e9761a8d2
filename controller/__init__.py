"""patchctl: a declarative GitOps patch-management controller for Windows and Linux fleets."""

__version__ = "0.1.0"
