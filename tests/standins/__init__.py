"""Stand-ins for packages that exist only on the board. Clearly not the real thing: they record calls."""
