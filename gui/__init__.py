"""The HubSync tray app; reaches the agent only through the control API client."""
