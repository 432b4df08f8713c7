"""More than one box: front doors sharing a leader over Redis (docs/scaling.md)."""
