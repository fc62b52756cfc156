"""nn.Modules built on fastgan's ops; names, arguments and state_dict keys follow parallel_wavegan where it has them."""

from fastgan.nn.phase_shuffle import PhaseShuffle

__all__ = ["PhaseShuffle"]
