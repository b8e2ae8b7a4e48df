"""Transports hand rendered messages to a provider. One module per provider."""
