"""The terminal entry point: ``meridian`` and the demo."""
