"""The demo integration: a simulated issue tracker (FakeTracker) synced into the catalog."""
