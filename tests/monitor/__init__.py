"""Tests of the client watching itself."""
