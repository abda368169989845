"""plastix.deploy"""
