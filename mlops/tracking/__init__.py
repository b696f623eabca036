"""Tracking service: grid-search optimizations logged to MLflow, queries, deployment to the ML service."""
