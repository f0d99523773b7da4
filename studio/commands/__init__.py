"""The `studio` subcommands, one module per area; studio/cli.py assembles them."""
