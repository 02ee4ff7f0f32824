"""Filings: what a city team files, and the lifecycle it goes through."""
