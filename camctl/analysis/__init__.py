"""Frames for analysis on the same box: shared-memory rings, and their readers."""
