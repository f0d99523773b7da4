"""Compression: structured pruning, knowledge distillation and (later) quantization-aware training."""
