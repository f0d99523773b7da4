"""STAND-IN for rknn-toolkit-lite2 on the stand-in board (tests only): see api.py."""
