"""Plain-PyTorch reference implementations: the CPU fallback of every op and the oracle of its tests."""

from fastgan.references.phase_shuffle import (
    phase_shuffle_backward_reference,
    phase_shuffle_reference,
    reflect_index,
)

__all__ = ["phase_shuffle_backward_reference", "phase_shuffle_reference", "reflect_index"]
