"""Resyncs: the engine that runs one, the coordinator that runs one at a time, and the event
listeners that trigger them (Ocean's ``on_resync`` and event listener model)."""
