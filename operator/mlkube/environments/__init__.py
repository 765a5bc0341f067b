"""Environments shipped with mlkube (the curated catalogue); pure, import-light."""
