"""The running agent: the service and its scheduler, watchers, health probes and metrics."""
