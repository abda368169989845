"""plastix: train plastic networks and their learning rules, export one IR, run on torch or Lava."""
__version__ = "0.1.0"
