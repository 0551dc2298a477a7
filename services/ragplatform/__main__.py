"""`python -m ragplatform ...` is the `ragplatform` command."""

from ragplatform.cli import main

main()
