"""Unit tests of agent.trust (the agent's hold on the federation manifest)."""
