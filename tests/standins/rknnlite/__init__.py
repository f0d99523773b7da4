"""STAND-IN for rknn-toolkit-lite2 (board-only): records calls so core_mask plumbing can be tested here."""
