"""Checkpoint -> ONNX conversion and verification."""
