"""The shared kernel: configuration, database, errors and HTTP plumbing used by every service."""
