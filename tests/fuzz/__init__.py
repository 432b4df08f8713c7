"""Fuzzing Rapport: hostile HTTP requests, WebSocket messages and SDP offers against a live server.

``python -m tests.fuzz`` (``make fuzz``) runs the full budget against a server process; tests/fuzz/test_fuzz.py
runs a short one in the normal test suite. See README.md, "Fuzzing".
"""
