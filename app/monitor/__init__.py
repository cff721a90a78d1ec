"""Watching the client itself: system usage, alerts and their history."""
