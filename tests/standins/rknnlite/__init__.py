"""STAND-IN for rknn-toolkit-lite2 (tests only): see api.py. In-process it records calls; on the stand-in
board it serves simulator outputs."""
