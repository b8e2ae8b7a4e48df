"""Patients and their word: import, consent, replies, unsubscribe links."""
