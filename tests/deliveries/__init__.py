"""Tests of the delivery domain, below the API."""
