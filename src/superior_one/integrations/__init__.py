"""Outbound clients for third-party services and the resilience around them."""
