"""The WebSocket endpoint: reader loop, bounded writer and the typed protocol messages."""
