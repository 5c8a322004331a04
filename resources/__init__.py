"""Icons, SQL migrations and desktop files shipped with HubSync."""
