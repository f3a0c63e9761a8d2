"""patchctl-agent: the reference agent of patchctl (DESIGN.md §4, "The reference agent").

It runs on the system `python3` (3.9 or newer) of a stock server and uses the standard library
only, so it can be shipped as one zipapp (`patchctl agent bundle DIR`). It imports nothing from
`controller/`: the HTTP protocol is the only contract between the two.
"""

from __future__ import annotations

VERSION = "0.1.0"
AGENT_VERSION = f"patchctl-agent/{VERSION}"
