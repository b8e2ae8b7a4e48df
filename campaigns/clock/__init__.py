"""Time: where a patient is, when a message may reach them, and when a schedule falls due."""
