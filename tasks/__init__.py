"""plastix.tasks"""
