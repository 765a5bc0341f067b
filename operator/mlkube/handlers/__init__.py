"""Thin Kopf handlers: parse, build (pure), apply, report status. Import `main` to register."""
