"""The control API's requests, answers and events as types (docs/control-api.md).

Shared by the agent (its handlers and the status build these) and its clients
(the tray reads them): the wire carries JSON objects, these say which keys they
have. A client must still expect keys it does not know (additive changes keep the
protocol version) and, from an older agent, ``NotRequired`` keys to be missing.
"""

from typing import Any, NotRequired, TypedDict

LINK_LIFETIME = 7 * 24 * 3600
"""How long a shared link stays valid unless the caller says (``link_ttl_seconds``)."""

# -- events --------------------------------------------------------------------------------


class ActiveUpload(TypedDict):
    path: str
    bytes_done: int
    bytes_total: int


class QueuedUpload(TypedDict):
    path: str
    size: int


class ProgressEvent(TypedDict):
    """``progress``: the pass under way (also ``status.progress``)."""

    phase: str
    root: str
    files_done: int
    files_total: int
    bytes_done: int
    bytes_total: int
    current: str | None
    current_size: int | None
    active: list[ActiveUpload]
    queue: list[QueuedUpload]


class HealthData(TypedDict):
    state: str
    """online, degraded, offline, signin_needed or unknown."""
    latency: float | None
    last_check: float | None
    consecutive_failures: int
    reason: str | None
    user: NotRequired[str | None]
    """Who is signed in to the hub (in ``status.health`` only)."""


class HealthEvent(HealthData):
    """``health``: a hub's (or EXAI's, ``"hub": "exai"``) state changed."""

    hub: str


class ActivityItem(TypedDict):
    """``activity``: a pass ended (``kind`` sync) or an answer to held deletions did."""

    ts: float
    root: str
    kind: str
    """sync or restore."""
    recorded: NotRequired[int]
    uploaded: NotRequired[int]
    uploaded_bytes: NotRequired[int]
    deduplicated: NotRequired[int]
    deleted: NotRequired[int]
    held_deletes: NotRequired[int]
    errors: NotRequired[int]
    duration: NotRequired[float]
    restored: NotRequired[int]


class ErrorEvent(TypedDict):
    """``error``: a file that failed, a folder degraded, the journal's disk full."""

    kind: str
    reason: str
    root: NotRequired[str]
    path: NotRequired[str]


class UploadEvent(TypedDict):
    """``upload``: one item of a one-off ``upload_paths`` (also its answer's items)."""

    path: str
    name: str
    state: str
    """hashing, uploading, done or failed."""
    bytes_done: NotRequired[int]
    bytes_total: NotRequired[int]
    ok: NotRequired[bool]
    key: NotRequired[str]
    sha256: NotRequired[str]
    size: NotRequired[int]
    link: NotRequired[str]
    deduplicated: NotRequired[bool]
    error: NotRequired[str]
    kind: NotRequired[str]


class HubDownloadEvent(TypedDict):
    """``hub_download``: progress of a ``hub.get`` / ``hub.pull``."""

    source: str
    state: str
    """running, done or failed."""
    bytes_done: int
    bytes_total: int
    files_done: int
    files_total: int


# -- the status snapshot -----------------------------------------------------------------------


class WaitingFile(TypedDict):
    path: str
    size: int | None
    """None: the file is gone and its deletion waits."""


class Problem(TypedDict):
    path: str
    kind: str
    reason: str


class RootStatus(TypedDict):
    id: str
    path: str
    hub: str
    paused: bool
    degraded: str | None
    missing: bool
    watching: bool
    ignore: list[str]
    counts: dict[str, int]
    held: list[str]
    answering: bool
    pass_due: bool
    waiting: int
    waiting_sample: list[WaitingFile]
    problems: list[Problem]


class CacheStats(TypedDict):
    entries: int
    bytes: int
    limit: int
    hits: int
    misses: int
    hit_rate: float


class HistoryHub(TypedDict):
    blobs: int
    """Superseded versions stored compressed."""
    raw_bytes: int
    stored_bytes: int


class HistoryStatus(TypedDict):
    """The background compression of history (``status.history``)."""

    enabled: bool
    rounds: int
    compressed: int
    hubs: dict[str, HistoryHub]


class PrefetchStatus(TypedDict):
    """Predictive caching (``status.prefetch``)."""

    enabled: bool
    state: str
    """Why no guess is fetched now, or what the last round did."""
    prefetched: int
    hits: int
    wasted_bytes: int
    bytes: int
    hit_rate_without: float


class StatusSnapshot(TypedDict):
    """``status``'s answer and event."""

    state: str
    """idle, syncing, paused, offline, signin_needed, disk_full or error."""
    paused: bool
    paused_until: float | None
    disk_full: str | None
    roots: list[RootStatus]
    queue: int
    progress: ProgressEvent | None
    health: dict[str, HealthData]
    exai: HealthData | None
    history: HistoryStatus
    hubs: dict[str, str]
    unavailable: dict[str, str]
    cache: CacheStats
    prefetch: PrefetchStatus
    metrics: dict[str, Any]
    """The metrics snapshot (docs/control-api.md), with ``all_time``."""


# -- requests ------------------------------------------------------------------------------


class PauseParams(TypedDict, total=False):
    root: str
    for_seconds: float


class RootParams(TypedDict, total=False):
    root: str


class AddRootParams(TypedDict):
    path: str
    hub: NotRequired[str]


class PathParams(TypedDict):
    path: str


class RestoreParams(TypedDict):
    path: str
    version: NotRequired[int]
    at: NotRequired[str]
    to: NotRequired[str]


class UploadPathsParams(TypedDict):
    paths: list[str]
    hub: NotRequired[str]
    link_ttl_seconds: NotRequired[int]


class ApplyHeldParams(TypedDict):
    root: str
    expected: NotRequired[int]


class ActivityParams(TypedDict, total=False):
    limit: int


class ExaiProcessParams(TypedDict):
    """``exai.process``: ask ``tool`` about ``source`` (a local path or ``user-files/<key>``)."""

    source: str
    tool: str
    question: NotRequired[str]
    hub: NotRequired[str]
    arguments: NotRequired[dict[str, Any]]


# -- answers -------------------------------------------------------------------------------


class AddRootAnswer(TypedDict):
    id: str
    path: str
    hub: str


class RemoveRootAnswer(TypedDict):
    removed: str


class VersionRow(TypedDict):
    version: int
    sha256: str
    size: int
    deleted: bool
    recorded_at: float
    mtime_ns: int


class HistoryAnswer(TypedDict):
    path: str
    root: str
    versions: list[VersionRow]


class RestoredFile(TypedDict):
    path: str
    version: int
    written_to: str
    identical: bool
    kept_both: bool


class RestoreAnswer(TypedDict):
    restored: list[RestoredFile]


class UploadPathsAnswer(TypedDict):
    items: list[UploadEvent]


class MetricsAnswer(TypedDict):
    live: dict[str, Any]
    totals: dict[str, float]
    cache: CacheStats


class ActivityAnswer(TypedDict):
    passes: list[ActivityItem]
    operations: list[dict[str, Any]]
    """Recent hub operations, as the journal keeps them."""


class LogTailAnswer(TypedDict):
    lines: list[str]


class RetryAnswer(TypedDict):
    retrying: int


class ApplyHeldAnswer(TypedDict):
    applying: int


class BringBackAnswer(TypedDict):
    restoring: int


class SyncOnceAnswer(TypedDict):
    reports: list[dict[str, Any]]
    """Each as ``hubsync sync --once --json`` prints it (agent/control/pass_json.py)."""


class QuitAnswer(TypedDict):
    stopping: bool


class AccountAnswer(TypedDict):
    """``sign_in`` / ``sign_out``'s answer, and ``config_get``'s ``account``."""

    signed_in: bool
    user: str | None


class SecretsState(TypedDict):
    exai_token: bool
    """One is stored in the keyring."""
    exai_token_env: bool
    """The agent has ``EXAI_WS_TOKEN``, which overrides the stored one."""


class SettingsAnswer(TypedDict):
    """``config_get`` and ``config_set``'s answer."""

    config: dict[str, Any]
    """config.toml as an object, by section."""
    autostart: bool
    secrets: SecretsState
    account: AccountAnswer


class SetSecretAnswer(TypedDict):
    name: str
    set: bool


class IgnoreAnswer(TypedDict):
    """``set_ignore``'s answer."""

    path: str
    ignore: list[str]
