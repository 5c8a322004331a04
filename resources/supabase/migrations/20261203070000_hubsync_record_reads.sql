-- Reads of hub files: one call per batch of downloads raises access_count and
-- sets last_accessed (EXAI's columns) of the caller's own file_metadata rows,
-- atomically (PostgREST alone cannot increment). A path named twice counts
-- twice. The columns are EXAI's; they are added only when missing.
alter table public.file_metadata add column if not exists access_count integer default 0;
alter table public.file_metadata add column if not exists last_accessed timestamptz;

create or replace function public.hubsync_record_reads(
    p_bucket text, p_paths text[], p_user uuid default null
)
returns integer
language sql
security invoker
set search_path = public
as $$
    with reads as (
        select p as path, count(*)::integer as n from unnest(p_paths) as p group by p
    ), touched as (
        update public.file_metadata m
           set access_count = coalesce(m.access_count, 0) + reads.n,
               last_accessed = now()
          from reads
         where m.path = reads.path
           and m.bucket_id = p_bucket
           and m.user_id = coalesce(auth.uid(), p_user)
        returning 1
    )
    select count(*)::integer from touched;
$$;

revoke execute on function public.hubsync_record_reads(text, text[], uuid) from public, anon;
grant execute on function public.hubsync_record_reads(text, text[], uuid)
    to authenticated, service_role;
