"""Payments: invoices, charges through a payment provider, webhooks, carrier payouts."""
