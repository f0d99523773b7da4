"""Host side of a board: SSH with host-key checks, push runtime and model, stream results (board issue)."""
