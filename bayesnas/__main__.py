"""`python -m bayesnas`: the command line."""

from bayesnas.cli import main

main()
