"""Watching the champion at work: the prediction log, drift and decay against its training data."""
