"""Live events without a public URL: ``ocean-trio relay`` receives webhooks publicly and an
integration takes them over an outbound WebSocket (docs/relay.md).

``_server`` (the relay: journal, ingress, ``/relay/connect``), ``_hub`` (its side of the
WebSocket), ``_source`` (the integration's side), ``_protocol`` (the messages),
``_settings`` (``relay.yaml``), ``_main`` (the command).
"""
