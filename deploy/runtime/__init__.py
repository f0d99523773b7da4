"""The code that runs on the board: numpy and the standard library only at import time.

It also runs on the host (ONNX Runtime, the rknn-toolkit2 simulator), so the studio's
calibration, verification and evaluation see images exactly as the board does.
"""
