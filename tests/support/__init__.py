"""Helpers that tests (and bench/) share: starting services, loading sets, sending the walkthrough,
checking answers. conftest.py files hold only fixtures; what a test or benchmark imports lives here."""
