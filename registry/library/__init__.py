"""The public provincial library (issue 6): what anyone sees without logging in."""
