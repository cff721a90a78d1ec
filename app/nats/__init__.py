"""NATS JetStream as the backend's distributed log (docs/scale-out.md).

The link publishes the same protocol v2 frames it sends the reference bridge, one per
symbol block, to a JetStream stream; consumers store them exactly once. What both sides
must agree on — subjects, message ids, headers, the stream's settings — lives in
:mod:`app.nats.subjects`; :mod:`app.nats.cluster` starts real ``nats-server`` nodes on
loopback for tests, benchmarks and a user trying it out.
"""
