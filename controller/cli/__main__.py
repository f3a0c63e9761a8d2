"""`python -m controller.cli` runs the command line (as the `patchctl` script does)."""

from controller.cli import main

main()
