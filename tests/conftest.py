"""Shared test setup: tests never download anything and never depend on wall-clock limits."""

import os

os.environ.setdefault("TORCH_HOME", os.path.join(os.path.dirname(__file__), ".torch-home-unused"))
