"""The web app: the staff console, its JSON API, and the public routes patients and
Twilio reach (each of which checks its own proof instead of a login).

- app.py: the factory; plugs in Services and run control (the one web module that
  imports tasks).
- context.py: this app's Services, for a request.
- auth.py: signing staff in (failure limit, session, API tokens; the login check
  every request passes first).
- security.py: roles, CSRF protection, security headers.
- views/: the routes, one module per group (see views/__init__.py).
"""
