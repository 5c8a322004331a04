"""The HubSync agent: configuration, CLI, watcher, control API and services."""
