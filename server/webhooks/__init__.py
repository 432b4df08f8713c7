"""Outgoing webhooks: endpoints, signing, the SSRF guard and the delivery dispatcher."""
