"""Audit jobs: a durable queue of audits that workers (in-process by default, Celery at scale) run."""
