"""isa-broker command groups, one module each."""
