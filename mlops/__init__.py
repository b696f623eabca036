"""MLOps microservices: simulator, ML model, tracking and monitoring."""
