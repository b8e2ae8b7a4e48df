"""The web's routes, one module per group: the console's (console.py holds its
blueprint; dashboard, patients, campaigns, runs, review add to it), the sign-in
pages (login), the JSON API (api, its models in schemas, its document in openapi)
and the public routes patients and Twilio reach (public).

Views never import tasks, Celery or kombu (an import-linter contract): what they
need from the workers, the app factory (campaigns.web.app) plugs in.
"""
