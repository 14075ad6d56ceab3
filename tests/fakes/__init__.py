"""Fakes at the process edge for service and integration tests (see tests/fakes/fake_twilio.py)."""
