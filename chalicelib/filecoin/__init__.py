"""Filecoin copies of archived pieces: one interface for storage backends
(backend.py), the PDP backend on Filecoin Onchain Cloud (pdp/), and the
service's side: how many copies, with which providers, tracked and repaired."""
