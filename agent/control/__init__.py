"""The agent's local control API: protocol, Unix-socket server and client."""
