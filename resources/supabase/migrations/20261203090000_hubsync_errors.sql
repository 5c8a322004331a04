-- hubsync_errors: every device's failure groups (one row per device and
-- fingerprint: kind + normalised message + operation), with occurrence
-- counts, first/last seen, affected paths (at most 100), state (open,
-- resolved, resolved_by_user) and the diagnosis EXAI gave. Written by each
-- device's agent, read from any device. Row level security: own rows only.
-- Also lets signed-in users read the limits of HubSync's buckets
-- (file_size_limit, allowed_mime_types), checked before any upload.
-- Safe to apply more than once.

create table if not exists public.hubsync_errors (
    user_id uuid not null default auth.uid(),
    device_id text not null,
    fingerprint text not null,
    kind text not null,
    operation text not null,
    message text not null,
    example text,
    occurrences integer not null default 0,
    open_files integer not null default 0,
    first_seen timestamptz,
    last_seen timestamptz,
    paths jsonb not null default '[]',
    state text not null default 'open'
        constraint hubsync_errors_state_check
        check (state in ('open', 'resolved', 'resolved_by_user')),
    resolved_at timestamptz,
    diagnosis text,
    diagnosed_at timestamptz,
    updated_at timestamptz not null default now(),
    constraint hubsync_errors_pkey primary key (user_id, device_id, fingerprint)
);
create index if not exists hubsync_errors_user_last_seen_idx
    on public.hubsync_errors (user_id, last_seen desc);

drop trigger if exists hubsync_errors_set_updated_at on public.hubsync_errors;
create trigger hubsync_errors_set_updated_at
    before update on public.hubsync_errors
    for each row execute function public.set_updated_at();

revoke all on table public.hubsync_errors from anon;
grant select, insert, update, delete on table public.hubsync_errors
    to authenticated, service_role;

alter table public.hubsync_errors enable row level security;

drop policy if exists hubsync_errors_select_own on public.hubsync_errors;
create policy hubsync_errors_select_own on public.hubsync_errors
    for select to authenticated using (user_id = (select auth.uid()));
drop policy if exists hubsync_errors_insert_own on public.hubsync_errors;
create policy hubsync_errors_insert_own on public.hubsync_errors
    for insert to authenticated with check (user_id = (select auth.uid()));
drop policy if exists hubsync_errors_update_own on public.hubsync_errors;
create policy hubsync_errors_update_own on public.hubsync_errors
    for update to authenticated
    using (user_id = (select auth.uid())) with check (user_id = (select auth.uid()));
drop policy if exists hubsync_errors_delete_own on public.hubsync_errors;
create policy hubsync_errors_delete_own on public.hubsync_errors
    for delete to authenticated using (user_id = (select auth.uid()));

-- The limits of HubSync's buckets, readable by signed-in users (GET
-- /storage/v1/bucket/{id}): a file the bucket would refuse is skipped with a
-- reason before any byte is sent.
drop policy if exists hubsync_buckets_select on storage.buckets;
create policy hubsync_buckets_select on storage.buckets
    for select to authenticated
    using (id in ('user-files', 'results', 'generated-files'));
