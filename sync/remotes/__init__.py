"""Hub back ends. Only ``supabase*`` modules here may import supabase-py."""
