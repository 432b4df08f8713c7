"""The call centre: queue, matching, session life, cues and the only place payloads are built."""
