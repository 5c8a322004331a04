-- HubSync beside the EXAI server's own file_metadata / file_operations.
-- EXAI names a file by storage.objects.id (file_id uuid, a foreign key) or,
-- in some versions, by its path (file_id text), and adds one more
-- file_metadata row per dedup hit. HubSync therefore puts no constraint on
-- these tables (its own bookkeeping lives in hubsync_manifest and
-- hubsync_devices) and writes plain inserts shaped to what the two views
-- below report. Nothing here depends on a column of EXAI's tables or of
-- storage.objects, so their own later migrations are never blocked.
-- Safe to apply more than once.

-- An earlier HubSync migration made file_metadata.file_id unique, which
-- EXAI's duplicate rows violate. Drop that index (HubSync's own name), never
-- a constraint somebody else declared.
do $$
begin
    if exists (
        select from pg_catalog.pg_class c
        where c.oid = to_regclass('public.file_metadata_file_id_key')
            and c.relkind = 'i'
            and not exists (select from pg_catalog.pg_constraint k where k.conindid = c.oid)
    ) then
        drop index public.file_metadata_file_id_key;
    end if;
end;
$$;

-- hubsync_schema: one row telling the client how the project names files.
-- Read at query time (to_regclass, no dependency), so it follows the tables.
create or replace view public.hubsync_schema
with (security_invoker = true) as
select
    (select format_type(a.atttypid, a.atttypmod)
        from pg_catalog.pg_attribute a
        where a.attrelid = to_regclass('public.file_metadata')
            and a.attname = 'file_id' and not a.attisdropped) as metadata_file_id_type,
    (select format_type(a.atttypid, a.atttypmod)
        from pg_catalog.pg_attribute a
        where a.attrelid = to_regclass('public.file_operations')
            and a.attname = 'file_id' and not a.attisdropped) as operations_file_id_type,
    array(select a.attname::text
        from pg_catalog.pg_attribute a
        where a.attrelid = to_regclass('public.file_operations')
            and a.attnum > 0 and not a.attisdropped
        order by a.attnum) as operations_columns;

-- hubsync_storage_objects: the caller's own objects (id, bucket, key), so a
-- client that only speaks PostgREST can fill a uuid file_id. A SQL function
-- with a text body keeps the view free of dependencies on storage.objects
-- columns (Storage's own migrations alter that table); it runs as the
-- caller, so storage.objects' row level security applies, and PostgreSQL
-- inlines it (hence no SET search_path: every name is qualified), so filters
-- on bucket_id and name use the table's index.
create or replace function public.hubsync_own_objects()
returns table (id uuid, bucket_id text, name text)
language sql
stable
as $$
    select o.id, o.bucket_id, o.name
    from storage.objects o
    where auth.uid() is null or split_part(o.name, '/', 1) = auth.uid()::text
$$;

create or replace view public.hubsync_storage_objects
with (security_invoker = true) as
select id, bucket_id, name from public.hubsync_own_objects();

revoke all on table public.hubsync_schema, public.hubsync_storage_objects from anon;
grant select on table public.hubsync_schema, public.hubsync_storage_objects
    to authenticated, service_role;
revoke all on function public.hubsync_own_objects() from public, anon;
grant execute on function public.hubsync_own_objects() to authenticated, service_role;
