"""Shared pytest setup."""
import os

os.environ.setdefault("MPLBACKEND", "Agg")
