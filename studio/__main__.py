"""`python -m studio` (and `torchrun ... -m studio ...`) runs the `studio` command."""
from studio.cli import main

main()
