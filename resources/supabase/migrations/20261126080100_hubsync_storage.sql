-- HubSync storage: three private buckets, and storage.objects policies that
-- let a signed-in user touch only keys whose first folder is their uid
-- ({auth_uid}/{sha256[:2]}/{sha256}/{name}). service_role bypasses RLS.
-- Safe to apply more than once.

insert into storage.buckets (id, name, public)
values
    ('user-files', 'user-files', false),
    ('results', 'results', false),
    ('generated-files', 'generated-files', false)
on conflict (id) do nothing;

drop policy if exists "hubsync_objects_select_own" on storage.objects;
create policy "hubsync_objects_select_own" on storage.objects
    for select to authenticated
    using (
        bucket_id in ('user-files', 'results', 'generated-files')
        and (storage.foldername(name))[1] = (select auth.uid()::text)
    );

drop policy if exists "hubsync_objects_insert_own" on storage.objects;
create policy "hubsync_objects_insert_own" on storage.objects
    for insert to authenticated
    with check (
        bucket_id in ('user-files', 'results', 'generated-files')
        and (storage.foldername(name))[1] = (select auth.uid()::text)
    );

drop policy if exists "hubsync_objects_update_own" on storage.objects;
create policy "hubsync_objects_update_own" on storage.objects
    for update to authenticated
    using (
        bucket_id in ('user-files', 'results', 'generated-files')
        and (storage.foldername(name))[1] = (select auth.uid()::text)
    )
    with check (
        bucket_id in ('user-files', 'results', 'generated-files')
        and (storage.foldername(name))[1] = (select auth.uid()::text)
    );

drop policy if exists "hubsync_objects_delete_own" on storage.objects;
create policy "hubsync_objects_delete_own" on storage.objects
    for delete to authenticated
    using (
        bucket_id in ('user-files', 'results', 'generated-files')
        and (storage.foldername(name))[1] = (select auth.uid()::text)
    );
