"""Opening the Supabase hub and reading any hub across devices (shared by CLI and control)."""
