"""The audit engine: a library with no web code."""
