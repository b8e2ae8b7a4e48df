"""The web app: the staff console, its JSON API, and the public routes patients and
Twilio reach (each of which checks its own proof instead of a login)."""
