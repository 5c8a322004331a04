"""What depends on the operating system: paths, locks, logs, keyring, autostart, menu entry."""
