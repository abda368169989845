"""plastix.trainer"""
