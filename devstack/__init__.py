"""The local development stack (`make dev`, `python -m devstack`); never deployed.

Runs the whole service on loopback only: emulated AWS (moto in server mode)
with the stage's tables and pin queue, the Chalice app behind a local server
that answers like API Gateway, the jobs AWS would run on a schedule, embedded
Kubo nodes (a process each) and the worker (`python -m devstack.worker`, a
process of its own that the stack starts again when it dies). Those processes
end with the stack however it ends (`lifeline`); the state directory
(`state`) is locked by the one stack that writes it.
"""
