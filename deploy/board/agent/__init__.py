"""The program that runs on the board: the numpy-only pipeline plus a result server on 127.0.0.1.

It is copied to the board by `studio board push` together with deploy/runtime and started
by `studio board run`; it needs only Python >= 3.9, numpy, OpenCV and the inference
backend (rknn-toolkit-lite2 on the board, onnxruntime where the tests stand in for one).
"""
