"""Real servers for the test bed, and pytest fixtures for them (see fixtures.py)."""
