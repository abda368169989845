"""Custom Lava Processes and ProcessModels (one pair per module, no side effects: Lava executes
every module in this folder when it compiles a network)."""
