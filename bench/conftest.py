import sys
from pathlib import Path

# `pytest bench/` from the repository root imports the bench package by name.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
