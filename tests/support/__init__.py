"""Helpers for the tests only: nothing outside tests/ imports them."""
