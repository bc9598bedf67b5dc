"""`python -m photod` runs the CLI."""

from photod.cli import main

main()
