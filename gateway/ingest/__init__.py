"""Platform ingestion: ``hazardgw ingest`` workers move every site's MQTT messages from a NATS
JetStream stream into the time-series database (see docs/scale-out.md).

* :mod:`gateway.ingest.config` reads ``ingest.yaml``;
* :mod:`gateway.ingest.decode` turns a site's telemetry, status and alarm messages into the same
  line protocol the gateway's own sink writes (the encoder of :mod:`gateway.sinks.lineprotocol`);
* :mod:`gateway.ingest.worker` is the JetStream worker (needs the ``platform`` extra: nats-py).
"""
