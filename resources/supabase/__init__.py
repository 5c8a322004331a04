"""Supabase SQL migrations, named the way the Supabase CLI expects."""
