"""Everything with side effects: catalog writes, containers, probes. Clients are injected."""
