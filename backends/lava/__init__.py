"""plastix.backends.lava — lowering of the IR to Lava processes (Loihi emulation)."""
