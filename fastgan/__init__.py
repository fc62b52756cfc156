"""fastgan: GAN vocoders whose hot paths run as Triton kernels, with exact PyTorch fallbacks."""

from fastgan import functional, nn, ops  # noqa: I001  (ops register torch.ops.fastgan.* on import)
from fastgan._backend import BackendUnavailableError, get_backend, set_backend
from fastgan.checkpoints import load_generator
from fastgan.export import export_onnx
from fastgan.streaming import StreamingVocoder

__version__ = "0.1.0"

__all__ = [
    "BackendUnavailableError",
    "StreamingVocoder",
    "export_onnx",
    "functional",
    "get_backend",
    "load_generator",
    "nn",
    "ops",
    "set_backend",
]
