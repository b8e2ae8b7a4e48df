"""Runs and deliveries: start an occurrence, fan out, queue, send, sweep."""
