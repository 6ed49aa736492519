"""Downstream evaluation: does a release train a better model?"""
