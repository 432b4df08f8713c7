"""The HTTP front door: middleware, sign-in, API keys, rate limits, access log and the OpenAPI document."""
