-- Test-only: the EXAI server's own file_metadata / file_operations, as its
-- database/migrations/20251109_create_core_tables.sql (and
-- scripts/supabase/schema.sql) create them on a Supabase project; see
-- ../shared/reference/exai.md. `{file_id}` is replaced by the test with
-- `uuid references storage.objects (id) on delete cascade` (EXAI's schema) or
-- `text` (the versions whose uploader writes the storage path there).
-- Applied on top of tests/pg_bootstrap.sql, before HubSync's migrations.

create table if not exists public.file_operations (
    id uuid default gen_random_uuid() primary key,
    user_id uuid not null references auth.users (id) on delete cascade,
    file_id {file_id},
    operation_type text not null
        check (operation_type in ('upload', 'download', 'process', 'delete', 'generate')),
    status text not null default 'pending'
        check (status in ('pending', 'processing', 'completed', 'failed')),
    metadata jsonb default '{{}}',
    error_message text,
    created_at timestamp with time zone default now(),
    updated_at timestamp with time zone default now(),
    completed_at timestamp with time zone
);

create index if not exists idx_file_operations_user_id on public.file_operations (user_id);
create index if not exists idx_file_operations_file_id on public.file_operations (file_id);
create index if not exists idx_file_operations_status on public.file_operations (status);
create index if not exists idx_file_operations_operation_type
    on public.file_operations (operation_type);
create index if not exists idx_file_operations_created_at
    on public.file_operations (created_at desc);

create table if not exists public.file_metadata (
    id uuid default gen_random_uuid() primary key,
    file_id {file_id},
    user_id uuid not null references auth.users (id) on delete cascade,
    filename text not null,
    file_size bigint not null,
    content_type text,
    bucket_id text not null,
    path text not null,
    sha256_hash text,
    tags text[] default '{{}}',
    access_count integer default 0,
    last_accessed timestamp with time zone,
    created_at timestamp with time zone default now(),
    updated_at timestamp with time zone default now()
);

create index if not exists idx_file_metadata_user_id on public.file_metadata (user_id);
create index if not exists idx_file_metadata_file_id on public.file_metadata (file_id);
create index if not exists idx_file_metadata_bucket_id on public.file_metadata (bucket_id);
create index if not exists idx_file_metadata_sha256_hash on public.file_metadata (sha256_hash);
create index if not exists idx_file_metadata_tags on public.file_metadata using gin (tags);
create index if not exists idx_file_metadata_created_at
    on public.file_metadata (created_at desc);
create index if not exists idx_file_metadata_last_accessed
    on public.file_metadata (last_accessed desc nulls last);

create or replace function update_updated_at_column()
returns trigger as $$
begin
    new.updated_at = now();
    return new;
end;
$$ language 'plpgsql';

drop trigger if exists update_file_operations_updated_at on public.file_operations;
create trigger update_file_operations_updated_at
    before update on public.file_operations
    for each row execute function update_updated_at_column();

drop trigger if exists update_file_metadata_updated_at on public.file_metadata;
create trigger update_file_metadata_updated_at
    before update on public.file_metadata
    for each row execute function update_updated_at_column();

create or replace function increment_file_access_count(p_file_id {file_id_arg})
returns void as $$
begin
    update public.file_metadata
    set access_count = access_count + 1, last_accessed = now(), updated_at = now()
    where file_id = p_file_id;
end;
$$ language plpgsql;

alter table public.file_operations enable row level security;
alter table public.file_metadata enable row level security;

drop policy if exists "Users can view their own file operations" on public.file_operations;
create policy "Users can view their own file operations" on public.file_operations
    for select using (auth.uid() = user_id);
drop policy if exists "Users can insert their own file operations" on public.file_operations;
create policy "Users can insert their own file operations" on public.file_operations
    for insert with check (auth.uid() = user_id);
drop policy if exists "Users can update their own file operations" on public.file_operations;
create policy "Users can update their own file operations" on public.file_operations
    for update using (auth.uid() = user_id);
drop policy if exists "Users can delete their own file operations" on public.file_operations;
create policy "Users can delete their own file operations" on public.file_operations
    for delete using (auth.uid() = user_id);

drop policy if exists "Users can view their own file metadata" on public.file_metadata;
create policy "Users can view their own file metadata" on public.file_metadata
    for select using (auth.uid() = user_id);
drop policy if exists "Users can insert their own file metadata" on public.file_metadata;
create policy "Users can insert their own file metadata" on public.file_metadata
    for insert with check (auth.uid() = user_id);
drop policy if exists "Users can update their own file metadata" on public.file_metadata;
create policy "Users can update their own file metadata" on public.file_metadata
    for update using (auth.uid() = user_id);
drop policy if exists "Users can delete their own file metadata" on public.file_metadata;
create policy "Users can delete their own file metadata" on public.file_metadata
    for delete using (auth.uid() = user_id);

drop policy if exists "Service role full access file_operations" on public.file_operations;
create policy "Service role full access file_operations" on public.file_operations
    for all to service_role using (true) with check (true);
drop policy if exists "Service role full access file_metadata" on public.file_metadata;
create policy "Service role full access file_metadata" on public.file_metadata
    for all to service_role using (true) with check (true);

grant select, insert, update, delete on public.file_operations to authenticated;
grant select, insert, update, delete on public.file_metadata to authenticated;
grant all on public.file_operations to service_role;
grant all on public.file_metadata to service_role;
grant execute on function update_updated_at_column() to authenticated, service_role;
grant execute on function increment_file_access_count({file_id_arg}) to authenticated, service_role;
