"""plastix.backends.torch"""
