"""Integrations with agent frameworks: ``langgraph`` and ``openai_agents`` (each imports its framework)."""
