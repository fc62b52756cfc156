"""fastgan's custom ops (``torch.ops.fastgan.*``): one module per hot path.

Each op checks its inputs, then runs the Triton kernel or the PyTorch reference as
:func:`fastgan._backend.use_triton` decides; its backward is a custom op of its own.
"""

from fastgan.ops import phase_shuffle

# Public op name -> the forward op; `fastgan info` and the tests walk this table.
OPS = {
    "phase_shuffle": phase_shuffle.phase_shuffle_op,
}

__all__ = ["OPS", "phase_shuffle"]
