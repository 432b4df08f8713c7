"""WebRTC media: server peers, feeds, forwarding, and the worker processes that run them."""
