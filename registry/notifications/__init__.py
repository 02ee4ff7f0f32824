"""Notifications: an inbox for each account, and e-mail through SMTP when one is configured."""
