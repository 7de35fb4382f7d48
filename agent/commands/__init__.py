"""isa-agent command groups, one module each."""
