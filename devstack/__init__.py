"""The local development stack (`make dev`, `python -m devstack`); never deployed.

Runs the whole service in one process, on loopback only: emulated AWS (moto in
server mode) with the stage's tables and pin queue, the Chalice app behind a
local server that answers like API Gateway, and the outbox sweeper that AWS
would run on a schedule.
"""
