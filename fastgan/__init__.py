"""fastgan: GAN vocoders whose hot paths run as Triton kernels, with exact PyTorch fallbacks."""

from fastgan import functional, nn, ops  # noqa: I001  (ops register torch.ops.fastgan.* on import)
from fastgan._backend import BackendUnavailableError, get_backend, set_backend
from fastgan.export import export_onnx
from fastgan.streaming import StreamingVocoder
from fastgan.checkpoints import load_generator

__version__ = "0.1.0"

__all__ = ["BackendUnavailableError", "functional", "get_backend", "load_generator", "nn", "ops", "set_backend"]
__all__ += ["StreamingVocoder", "export_onnx"]
