"""The monitoring service: Evidently checks of the production set against the testing set."""
