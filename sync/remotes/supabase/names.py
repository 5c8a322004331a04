"""Names and texts of the Supabase hub that the CLI needs without loading supabase-py.

Importing supabase-py costs a CLI start ~0.35 s; commands that only name a keyring
entry or print a warning must not pay it (tests/test_cli_imports.py checks).
"""

SESSION_KEY = "supabase.auth.token"
"""The key supabase_auth stores its session under (its ``constants.STORAGE_KEY``)."""

SERVICE_ROLE_WARNING = (
    "SERVICE-ROLE MODE: HubSync is using the Supabase service_role key, which bypasses "
    "row level security for the whole project. Every file is recorded under the fixed "
    "user id {user_id}. Use this only on a trusted headless server."
)
