"""`python -m bsrn_cli` runs the command line."""

from bsrn_cli.cli import main

main()
