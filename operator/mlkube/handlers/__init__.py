"""Thin Kopf handlers: parse the event, call a controller (`mlkube.controllers`), turn its
outcome into Kopf's status patch, Events and retries. Import `main` to register them."""
