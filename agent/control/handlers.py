"""The control API methods the agent serves (documented in docs/control-api.md)."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Any

from agent.control.issues_api import (
    API_GROUPS,
    API_ISSUES,
    diagnose,
    group_or_fail,
    ignore_path,
    issues_report,
    retry_group,
)
from agent.control.pass_json import report_json
from agent.control.payloads import (
    LINK_LIFETIME,
    ActivityAnswer,
    AddRootAnswer,
    ApplyHeldAnswer,
    BringBackAnswer,
    HistoryAnswer,
    LogTailAnswer,
    MetricsAnswer,
    QuitAnswer,
    RemoveRootAnswer,
    RestoreAnswer,
    RetryAnswer,
    StatusSnapshot,
    SyncOnceAnswer,
    UploadPathsAnswer,
)
from agent.control.protocol import BAD_PARAMS, ControlError
from agent.control.service_api import AgentApi
from agent.platform.logs import tail
from sync.errors import SyncError, UndecodableName
from sync.reattach import reattach
from sync.remotes.base import ErrorMirror
from sync.restore import RestoreError, restore_path


def _path(params: dict[str, Any], key: str = "path") -> Path:
    value = params.get(key)
    if not isinstance(value, str) or not value:
        raise ControlError(BAD_PARAMS, f"'{key}' must be a path")
    if "\0" in value:
        raise ControlError(BAD_PARAMS, f"'{key}' must not contain a NUL character")
    return Path(value).expanduser()


def register_handlers(agent: AgentApi) -> None:
    ctx = agent.ctx
    journal = ctx.journal

    def find(path: Path) -> tuple[Any, str]:
        try:
            found = journal.root_for(path)
        except UndecodableName as exc:
            raise ControlError(BAD_PARAMS, str(exc)) from None
        if found is None:
            raise ControlError("not_found", f"{path} is not inside a mirrored folder")
        return found

    def root_id_of(params: dict[str, Any]) -> str | None:
        if not params.get("root"):
            return None
        root = journal.root_by_path(_path(params, "root").resolve())
        if root is None:
            raise ControlError("not_found", f"{params['root']} is not a mirrored folder")
        return root.id

    async def status(params: dict[str, Any]) -> StatusSnapshot:
        return agent.status()

    async def pause(params: dict[str, Any]) -> StatusSnapshot:
        duration = params.get("for_seconds")
        if duration is not None and (
            isinstance(duration, bool)
            or not isinstance(duration, (int, float))
            or not 0 < duration <= 7 * 86400
        ):
            raise ControlError(BAD_PARAMS, "'for_seconds' must be a number of seconds up to 7 days")
        if duration is not None and params.get("root"):
            raise ControlError(BAD_PARAMS, "'for_seconds' pauses everything, not one folder")
        agent.set_paused(True, root_id_of(params), None if duration is None else float(duration))
        return agent.status()

    async def resume(params: dict[str, Any]) -> StatusSnapshot:
        agent.set_paused(False, root_id_of(params))
        return agent.status()

    async def add_root(params: dict[str, Any]) -> AddRootAnswer:
        folder = _path(params)
        if not folder.is_dir():
            raise ControlError(BAD_PARAMS, f"{folder} is not a folder")
        hub = params.get("hub") or ctx.config.default_hub()
        if hub not in ("local", "supabase"):
            raise ControlError(BAD_PARAMS, "'hub' must be 'local' or 'supabase'")
        if hub == "local" and hub not in ctx.remotes:
            raise ControlError("unavailable", ctx.unavailable.get(hub, "no local hub"))
        if hub == "supabase" and not ctx.config.supabase_configured:
            raise ControlError(
                "unavailable", ctx.unavailable.get(hub, "Supabase is not configured")
            )
        # A Supabase folder added before signing in waits for the sign-in (status says so).
        try:
            root = journal.add_root(folder, hub, hub_asked=bool(params.get("hub")))
        except (ValueError, UndecodableName) as exc:
            raise ControlError(BAD_PARAMS, str(exc)) from None
        remote = ctx.remotes.get(hub)
        if remote is not None:
            root, _ = await reattach(journal, remote, root)  # mirrored before: its history
        agent.add_root(root)
        agent.publish_status()
        return {"id": root.id, "path": str(root.path), "hub": root.hub}

    async def remove_root(params: dict[str, Any]) -> RemoveRootAnswer:
        root = journal.root_by_path(_path(params).resolve())
        if root is None:
            raise ControlError("not_found", f"{params['path']} is not a mirrored folder")
        agent.remove_root(root.id)
        journal.remove_root(root.id)
        agent.publish_status()
        return {"removed": str(root.path)}

    async def upload_paths(params: dict[str, Any]) -> UploadPathsAnswer:
        raw = params.get("paths")
        if not isinstance(raw, list) or not all(isinstance(p, str) for p in raw):
            raise ControlError(BAD_PARAMS, "'paths' must be a list of paths")
        ttl = params.get("link_ttl_seconds", LINK_LIFETIME)
        if not isinstance(ttl, int) or ttl <= 0:
            raise ControlError(BAD_PARAMS, "'link_ttl_seconds' must be a positive integer")
        return {"items": await agent.upload([Path(p) for p in raw], params.get("hub"), ttl)}

    async def history(params: dict[str, Any]) -> HistoryAnswer:
        root, rel = find(_path(params))
        return {
            "path": rel,
            "root": str(root.path),
            "versions": [
                {
                    "version": v.version,
                    "sha256": v.sha256,
                    "size": v.size,
                    "deleted": v.deleted,
                    "recorded_at": v.recorded_at,
                    "mtime_ns": v.mtime_ns,
                }
                for v in journal.versions(root.id, rel)
            ],
        }

    async def restore(params: dict[str, Any]) -> RestoreAnswer:
        root, rel = find(_path(params))
        remote = ctx.remotes.get(root.hub)
        if remote is None:
            raise ControlError("unavailable", ctx.unavailable.get(root.hub, "hub unavailable"))
        try:
            at = datetime.fromisoformat(params["at"]) if params.get("at") else None
        except (TypeError, ValueError):
            raise ControlError(BAD_PARAMS, "'at' must be an ISO date and time") from None
        to = _path(params, "to") if params.get("to") else None
        try:
            done = await restore_path(
                journal,
                remote,
                ctx.cache,
                root,
                rel,
                version=params.get("version"),
                at=at,
                to_dir=to,
            )
        except RestoreError as exc:
            raise ControlError("not_found", exc.message) from None
        return {
            "restored": [
                {
                    "path": d.relpath,
                    "version": d.version,
                    "written_to": str(d.path),
                    "identical": d.identical,
                    "kept_both": d.kept_both,
                }
                for d in done
            ]
        }

    async def metrics(params: dict[str, Any]) -> MetricsAnswer:
        since = float(params.get("since", 0))
        return {
            "live": agent.metrics.snapshot(),
            "totals": agent.metrics_store.totals(since=since),
            "cache": agent.status()["cache"],
        }

    async def activity(params: dict[str, Any]) -> ActivityAnswer:
        limit = int(params.get("limit", 50))
        return {
            "passes": list(agent.activity)[:limit],
            "operations": journal.recent_operations(limit),
        }

    async def log_tail(params: dict[str, Any]) -> LogTailAnswer:
        return {"lines": tail(ctx.paths.log_file, int(params.get("n", 100)))}

    async def retry(params: dict[str, Any]) -> RetryAnswer:
        with journal.transaction():
            count = journal.retry_now(root_id_of(params))
        agent.wake()
        return {"retrying": count}

    def running_root(params: dict[str, Any]) -> str:
        root_id = root_id_of(params)
        if root_id is None or root_id not in agent.runtimes:
            raise ControlError("bad_params", "root: a mirrored folder is needed")
        return root_id

    async def apply_held(params: dict[str, Any]) -> ApplyHeldAnswer:
        expected = params.get("expected")
        if expected is not None and not isinstance(expected, int):
            raise ControlError("bad_params", "expected: the number of files the user saw")
        return {"applying": agent.held.apply(running_root(params), expected)}

    async def bring_back_held(params: dict[str, Any]) -> BringBackAnswer:
        return {"restoring": agent.held.bring_back(running_root(params))}

    async def sync_once(params: dict[str, Any]) -> SyncOnceAnswer:
        return {"reports": [report_json(r) for r in await agent.sync_now()]}

    def group_of(params: dict[str, Any]) -> Any:
        try:
            return group_or_fail(journal, params.get("group"))
        except LookupError as exc:
            raise ControlError("not_found", str(exc)) from None

    async def issues(params: dict[str, Any]) -> dict[str, Any]:
        report = issues_report(
            journal,
            with_ignored=bool(params.get("ignored")),
            max_issues=API_ISSUES,
            max_groups=API_GROUPS,
        )
        if params.get("all_devices"):
            hub: dict[str, Any] = {}
            for name, remote in ctx.remotes.items():
                if isinstance(remote, ErrorMirror):
                    try:
                        hub[name] = await remote.list_errors()
                    except SyncError as exc:
                        hub[name] = {"error": exc.message}
            report["hub_groups"] = hub
        return report

    async def issues_retry(params: dict[str, Any]) -> RetryAnswer:
        if params.get("group") is not None:
            count = retry_group(journal, group_of(params).id)
        else:
            with journal.transaction():
                count = journal.retry_now(root_id_of(params))
        agent.wake()
        return {"retrying": count}

    async def issues_resolve(params: dict[str, Any]) -> dict[str, Any]:
        group = group_of(params)
        journal.resolve_group(group.id, time.time())
        return {"resolved": group.id}

    async def issues_ignore(params: dict[str, Any]) -> dict[str, Any]:
        root, rel = find(_path(params))
        try:
            rule = ignore_path(root, rel)
        except (ValueError, OSError) as exc:
            raise ControlError(BAD_PARAMS, str(exc)) from None
        agent.rescan(root.id)
        return {"rule": rule, "file": str(root.path / ".hubignore")}

    async def issues_diagnose(params: dict[str, Any]) -> dict[str, Any]:
        group = group_of(params)
        if agent.exai is None:
            raise ControlError("unavailable", "EXAI is not available to this agent")
        client = agent.exai.client
        hub_kinds = sorted({r.hub for r in journal.roots()}) or [ctx.config.default_hub()]
        settings = client.settings
        try:
            return await diagnose(
                client,
                journal,
                group,
                log_file=ctx.paths.log_file,
                hub_kind=", ".join(hub_kinds),
                secrets=(settings.token, settings.jwt or "", ctx.config.supabase_anon_key),
            )
        except LookupError as exc:
            raise ControlError("unavailable", str(exc)) from None

    async def quit_agent(params: dict[str, Any]) -> QuitAnswer:
        agent.stop()
        return {"stopping": True}

    for name, handler in {
        "status": status,
        "pause": pause,
        "resume": resume,
        "add_root": add_root,
        "remove_root": remove_root,
        "upload_paths": upload_paths,
        "history": history,
        "restore": restore,
        "metrics": metrics,
        "activity": activity,
        "log_tail": log_tail,
        "retry": retry,
        "apply_held": apply_held,
        "bring_back_held": bring_back_held,
        "sync_once": sync_once,
        "issues": issues,
        "issues.retry": issues_retry,
        "issues.resolve": issues_resolve,
        "issues.ignore": issues_ignore,
        "issues.diagnose": issues_diagnose,
        "quit": quit_agent,
    }.items():
        agent.server.register(name, handler)
