"""kafkaml: machine learning on Apache Kafka data streams.

The shared library: wire protocol, Kafka client settings and factories, framework adapters,
the producers' data SDK and the local-stack supervisor. Every component imports it; none copies it.
"""

__version__ = "0.1.0"
