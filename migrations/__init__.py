"""Alembic migrations, shipped as a package so an installed faceid can run them."""
