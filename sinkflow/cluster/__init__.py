"""Cluster mode: several sinkflow nodes sharing one Kafka cluster, with no coordination of their own.

Kafka is the distributed part; each module here puts one sinkflow interface on it:

- :mod:`~sinkflow.cluster.settings`: how a node reaches the cluster and names its internal topics.
- :mod:`~sinkflow.cluster.replica`: the node's one consumer following the internal topics and
  the streams' topics, and its producer (a publish returns once the message is acknowledged by
  Kafka *and* applied locally, so a node reads its own writes).
- :mod:`~sinkflow.cluster.catalog`: the catalog (sinks, views, external streams, their encrypted
  secrets, checkpoints) kept in a compacted topic, replicated in memory on every node.
- :mod:`~sinkflow.cluster.streams`: streams whose appends go through a Kafka topic; every node
  keeps a local copy of each stream's log, fed in topic order, for the engine to read.
- :mod:`~sinkflow.cluster.shards`: streams on several partitions: where each row goes, and the
  one order every node applies them in.
- :mod:`~sinkflow.cluster.work`: which sinks this node runs, from a Kafka consumer group.
- :mod:`~sinkflow.cluster.nodes`: the nodes' heartbeats (address, sinks run, their status).
- :mod:`~sinkflow.cluster.manager` and :mod:`~sinkflow.cluster.node`: the sink manager that
  starts only this node's sinks, and the node wiring it all at server start-up.

Without ``--cluster`` none of this is imported: the embedded single-process mode is unchanged.
"""
