"""The compress-and-deploy wizard's steps (the Compress page holds them)."""
