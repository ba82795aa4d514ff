"""The deploy tests share stack_files.py; with --import-mode=importlib the folder must be on the path."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
