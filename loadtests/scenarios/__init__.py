"""Locust scenarios: behaviour only, on top of loadtests/user.py."""
