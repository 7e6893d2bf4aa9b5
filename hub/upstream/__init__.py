"""Calls to what the hub does not control (department databases and subgraphs, other regions' hubs): a circuit
breaker per upstream (``breaker``), answers read under a byte cap (``bounded``), and the one guarded call that
every source makes (``guard``)."""
