"""Signed webhooks: a tenant's endpoints, the events of its pins' status
changes (derived from the pins table's stream), and their delivery."""
