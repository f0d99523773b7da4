"""Host-only conversion: torch -> ONNX, ONNX -> RKNN, and verification of the result."""
