"""fastgan's benchmarks: ``python -m bench [--quick] [--only OP] [--out DIR]``."""
