"""`python3 patchctl-agent.pyz ...` and `python3 -m patchctl_agent ...`."""

from __future__ import annotations

import sys

from patchctl_agent.cli import main

if __name__ == "__main__":
    sys.exit(main())
