"""plastix.backends — lowerings of the IR: torch (simulator) and lava (Loihi emulation)."""
