-- Compressed history: superseded versions of mirrored files may be stored
-- compressed under {uid}/history/{sha[:2]}/{sha}.zst (or .gz) in user-files,
-- with no file_metadata row, so EXAI never takes them for a file; the current
-- version of every file stays raw under its own key. The manifest rows of a
-- blob say how it is stored: encoding '' (raw), 'none' (looked at, left raw),
-- 'zstd' or 'gzip' (stored_size bytes under the history key).
-- Touches only HubSync's own table; reads file_metadata as the caller (RLS).
-- Safe to apply more than once.
alter table public.hubsync_manifest add column if not exists encoding text not null default '';
alter table public.hubsync_manifest add column if not exists stored_size bigint;

-- Whether some path of the caller has the blob as its newest, live version.
create or replace function public.hubsync_blob_is_current(p_sha text, p_user uuid default null)
returns boolean
language sql
stable
security invoker
set search_path = public
as $$
    select exists (
        select 1 from public.hubsync_manifest m
         where m.user_id = coalesce(auth.uid(), p_user) and m.sha256 = p_sha
           and not m.deleted
           and m.version = (select max(n.version) from public.hubsync_manifest n
                             where n.user_id = m.user_id and n.device_id = m.device_id
                               and n.root_id = m.root_id and n.rel_path = m.rel_path)
    );
$$;

-- (Both lists are one jsonb array: a scalar answer, as every client reads it.)
-- Blobs current nowhere whose rows are not switched yet, or whose raw object
-- (its file_metadata row) outlived the switch. A raw object with more than one
-- file_metadata row is referred to by someone else (EXAI's dedup rows): skipped.
create or replace function public.hubsync_history_superseded(
    p_limit integer, p_user uuid default null
)
returns jsonb
language sql
stable
security invoker
set search_path = public
as $$
    with mine as (
        select * from public.hubsync_manifest where user_id = coalesce(auth.uid(), p_user)
    ), newest as (
        select distinct on (device_id, root_id, rel_path) sha256, deleted
          from mine order by device_id, root_id, rel_path, version desc
    ), current_blobs as (
        select distinct sha256 from newest where not deleted
    ), used_elsewhere as (
        -- objects a dropped file or an EXAI processing uses: they stay raw
        select coalesce(o.metadata->>'storage_path', o.file_id::text) as storage_key
          from public.file_operations o
         where o.user_id = coalesce(auth.uid(), p_user)
           and (o.operation_type in ('process', 'generate') or o.metadata->>'source' = 'drop')
    ), history as (
        select m.sha256, m.storage_key, max(m.size) as size, max(m.content_type) as content_type,
               case when bool_or(m.encoding = '') then '' else max(m.encoding) end as encoding
          from mine m
         where coalesce(m.storage_key, '') <> ''
           and m.sha256 not in (select c.sha256 from current_blobs c)
           and m.storage_key not in (
               select u.storage_key from used_elsewhere u where u.storage_key is not null)
         group by m.sha256, m.storage_key
    ), referred as (
        select h.*, (select count(*) from public.file_metadata f
                      where f.bucket_id = 'user-files' and f.path = h.storage_key) as n_rows
          from history h
    )
    select coalesce(jsonb_agg(to_jsonb(picked)), '[]'::jsonb) from (
        select r.sha256, r.storage_key, r.size, r.content_type, r.encoding
          from referred r
         where r.n_rows <= 1
           and (r.encoding = '' or (r.encoding in ('zstd', 'gzip') and r.n_rows = 1))
         order by r.sha256
         limit p_limit
    ) picked;
$$;

-- Blobs current somewhere again that have rows switched to a compressed
-- encoding; the key is a current row's (where the raw object belongs).
create or replace function public.hubsync_history_revived(
    p_limit integer, p_user uuid default null
)
returns jsonb
language sql
stable
security invoker
set search_path = public
as $$
    with mine as (
        select * from public.hubsync_manifest where user_id = coalesce(auth.uid(), p_user)
    ), newest as (
        select distinct on (device_id, root_id, rel_path) *
          from mine order by device_id, root_id, rel_path, version desc
    ), current_rows as (
        select n.sha256, max(n.storage_key) as storage_key, max(n.size) as size,
               max(n.content_type) as content_type
          from newest n where not n.deleted group by n.sha256
    ), packed as (
        select m.sha256, max(m.encoding) as encoding from mine m
         where m.encoding in ('zstd', 'gzip') group by m.sha256
    )
    select coalesce(jsonb_agg(to_jsonb(picked)), '[]'::jsonb) from (
        select c.sha256, c.storage_key, c.size, c.content_type, p.encoding
          from current_rows c join packed p using (sha256)
         order by c.sha256
         limit p_limit
    ) picked;
$$;

-- Switch the rows of one stored object to an encoding, unless the blob is
-- current somewhere (then nothing changes and the answer is false).
create or replace function public.hubsync_history_switch(
    p_sha text, p_key text, p_encoding text, p_stored_size bigint, p_user uuid default null
)
returns boolean
language plpgsql
security invoker
set search_path = public
as $$
begin
    if public.hubsync_blob_is_current(p_sha, p_user) then
        return false;
    end if;
    update public.hubsync_manifest
       set encoding = p_encoding, stored_size = p_stored_size
     where user_id = coalesce(auth.uid(), p_user) and sha256 = p_sha and storage_key = p_key;
    return true;
end;
$$;

revoke execute on function public.hubsync_blob_is_current(text, uuid) from public, anon;
revoke execute on function public.hubsync_history_superseded(integer, uuid) from public, anon;
revoke execute on function public.hubsync_history_revived(integer, uuid) from public, anon;
revoke execute on function public.hubsync_history_switch(text, text, text, bigint, uuid)
    from public, anon;
grant execute on function public.hubsync_blob_is_current(text, uuid)
    to authenticated, service_role;
grant execute on function public.hubsync_history_superseded(integer, uuid)
    to authenticated, service_role;
grant execute on function public.hubsync_history_revived(integer, uuid)
    to authenticated, service_role;
grant execute on function public.hubsync_history_switch(text, text, text, bigint, uuid)
    to authenticated, service_role;

-- What compression saves: blobs stored compressed, their raw and stored bytes.
create or replace function public.hubsync_history_stats(p_user uuid default null)
returns jsonb
language sql
stable
security invoker
set search_path = public
as $$
    select jsonb_build_object(
        'blobs', count(*), 'raw_bytes', coalesce(sum(size), 0),
        'stored_bytes', coalesce(sum(stored_size), 0))
      from (select sha256, max(size) as size, max(stored_size) as stored_size
              from public.hubsync_manifest
             where user_id = coalesce(auth.uid(), p_user) and encoding in ('zstd', 'gzip')
             group by sha256) packed;
$$;
revoke execute on function public.hubsync_history_stats(uuid) from public, anon;
grant execute on function public.hubsync_history_stats(uuid) to authenticated, service_role;
