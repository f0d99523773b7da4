"""Everything that turns a trained detector into something a board runs: convert, runtime, board."""
