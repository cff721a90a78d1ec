"""Trading in the core: what the trader (or a signal) wants, the risk engine that
guards it, and the path that carries it to the terminal exactly once."""
