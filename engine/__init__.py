"""vetrina: an inference engine for e-commerce product images.

``import vetrina`` stays light: numpy and OpenCV only. ONNX Runtime is imported when a
model is opened; torch, TensorRT and CUDA only by the converters or a GPU backend.
"""

__version__ = "0.2.0"
