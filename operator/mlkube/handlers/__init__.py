"""Thin Kopf handlers: parse, call pure builders, apply, return status. Import `main` to register."""
