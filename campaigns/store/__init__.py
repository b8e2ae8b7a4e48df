"""The ledger: SQL is the source of truth. Only this package imports SQLAlchemy."""
