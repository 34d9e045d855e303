"""GitHub sync configuration: HMR_GITHUB_SYNC_* variables, each falling back to upstream's name."""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

import jwt
from attrs import field, frozen
from yarl import URL

from horde_model_records import Category
from shared.config import ConfigError, get_bool, get_float, get_int, get_json_list, get_str

PREFIX = "HMR_GITHUB_SYNC_"
UPSTREAM = "HORDE_GITHUB_SYNC_"

#: the 10 categories that have a file in a legacy repository, in the order a run scans them
SYNCED: tuple[Category, ...] = (
    Category.image_generation,
    Category.blip,
    Category.clip,
    Category.codeformer,
    Category.controlnet,
    Category.esrgan,
    Category.gfpgan,
    Category.safety_checker,
    Category.miscellaneous,
    Category.text_generation,
)
#: our setting -> upstream's names for the same thing, tried in order when ours is unset
FALLBACKS: dict[str, tuple[str, ...]] = {
    "PRIMARY_API_URL": (UPSTREAM + "PRIMARY_API_URL",),
    "PRIMARY_API_TIMEOUT": (UPSTREAM + "PRIMARY_API_TIMEOUT",),
    "TOKEN": (UPSTREAM + "GITHUB_TOKEN", "GITHUB_TOKEN"),
    "APP_ID": ("GITHUB_APP_ID",),
    "APP_INSTALLATION_ID": ("GITHUB_INSTALLATION_ID", "GITHUB_APP_INSTALLATION_ID"),
    "APP_PRIVATE_KEY": ("GITHUB_APP_PRIVATE_KEY",),
    "APP_PRIVATE_KEY_PATH": ("GITHUB_APP_PRIVATE_KEY_PATH",),
    "CATEGORIES": (UPSTREAM + "CATEGORIES_TO_SYNC",),
    "MIN_CHANGES": (UPSTREAM + "MIN_CHANGES_THRESHOLD",),
    "PR_LABELS": (UPSTREAM + "PR_LABELS",),
    "PR_REVIEWERS": (UPSTREAM + "PR_REVIEWERS",),
    "PR_TEAM_REVIEWERS": (UPSTREAM + "PR_AUTO_ASSIGN_TEAM",),
    "DRY_RUN": (UPSTREAM + "DRY_RUN",),
    "NO_PR": (UPSTREAM + "NO_PR",),
    "EXPORT_TEXT_METADATA_COLUMNS": (UPSTREAM + "EXPORT_TEXT_METADATA_COLUMNS",),
    "OUTPUT_DIR": (UPSTREAM + "OUTPUT_DIR",),
    "WATCH": (UPSTREAM + "WATCH_MODE",),
    "WATCH_INTERVAL": (UPSTREAM + "WATCH_INTERVAL_SECONDS",),
    "WATCH_INITIAL_DELAY": (UPSTREAM + "WATCH_INITIAL_DELAY_SECONDS",),
    "WATCH_STARTUP_SYNC": (UPSTREAM + "WATCH_ENABLE_STARTUP_SYNC",),
    "COMMIT_AUTHOR_NAME": ("GIT_AUTHOR_NAME",),
    "COMMIT_AUTHOR_EMAIL": ("GIT_AUTHOR_EMAIL",),
}
#: every HMR_GITHUB_SYNC_<NAME> there is (docs/operators.md lists the same); another name under
#: the prefix is a typo, refused rather than silently ignored
SETTINGS = frozenset(
    {
        *FALLBACKS,
        *("API_URL", "IMAGE_REPO", "TEXT_REPO", "BASE_BRANCH", "IMAGE_BASE_BRANCH"),
        *("TEXT_BASE_BRANCH", "MAX_REMOVALS", "FORCE", "DELETE_SUPERSEDED_BRANCHES"),
        *("FULL_RECONCILE_INTERVAL", "RETRY_BACKOFF", "MAX_RATE_LIMIT_WAIT", "STATUS_FILE"),
        *("METRICS_PORT", "METRICS_HOST"),
    }
)
DEFAULT_LABELS = ("automated", "sync", "ready-for-review")
IMAGE_REPO = "Haidra-Org/AI-Horde-image-model-reference"
TEXT_REPO = "Haidra-Org/AI-Horde-text-model-reference"


def resolve(env: Mapping[str, str], origins: dict[str, str] | None = None) -> dict[str, str]:
    """Every setting under its HMR_GITHUB_SYNC_ name: ours when set, else upstream's (`origins`
    collects which upstream name filled which of ours, for error messages)."""
    origins = {} if origins is None else origins
    out = {k: v for k, v in env.items() if k.startswith(PREFIX) and v != ""}

    def fill(name: str, value: str, source: str) -> None:
        if name not in out:
            out[name] = value
            origins[name] = source

    for name, upstream in FALLBACKS.items():
        for other in upstream:
            if env.get(other):
                fill(PREFIX + name, env[other], other)
                break
    for kind, default in (("IMAGE", IMAGE_REPO), ("TEXT", TEXT_REPO)):
        # upstream's repository settings: each part defaults on its own (a fork sets OWNER only)
        nested = f"HORDE_MODEL_REFERENCE_{kind}_GITHUB_REPO__"
        owner, name = default.split("/")
        if env.get(nested + "OWNER") or env.get(nested + "NAME"):
            owner = env.get(nested + "OWNER") or owner
            name = env.get(nested + "NAME") or name
            fill(f"{PREFIX}{kind}_REPO", f"{owner}/{name}", f"{nested}OWNER/__NAME")
        if env.get(nested + "BRANCH") and PREFIX + "BASE_BRANCH" not in out:
            fill(f"{PREFIX}{kind}_BASE_BRANCH", env[nested + "BRANCH"], nested + "BRANCH")
    return out


def _blame(message: str, origins: Mapping[str, str]) -> str:
    """A message about one of our names, naming the upstream variable that was really set."""
    for ours, theirs in origins.items():
        message = re.sub(rf"\b{re.escape(ours)}\b", f"{theirs} (read as {ours})", message)
    return message


def public_url(url: str) -> str:
    """The URL without a user or password (it goes into logs and public PR bodies)."""
    try:
        parsed = URL(url)
    except ValueError:
        return url
    if parsed.user is None and parsed.password is None:
        return url
    return str(parsed.with_user(None))


def _check_names(environ: Mapping[str, str]) -> None:
    for key in sorted(environ):
        name = key.removeprefix(PREFIX)
        if key.startswith(PREFIX) and name not in SETTINGS:
            close = difflib.get_close_matches(name, SETTINGS, n=1)
            hint = f" (did you mean {PREFIX}{close[0]}?)" if close else ""
            raise ConfigError(f"{key} is not a setting of the GitHub sync{hint}")


def _url(name: str, value: str) -> str:
    """An http(s) URL with a host, without its trailing slash."""
    value = value.strip().rstrip("/")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{name} must be an http(s) URL, got {public_url(value)!r}")
    return value


def _port(env: Mapping[str, str], name: str) -> int | None:
    if not env.get(name):
        return None
    port = get_int(env, name, 0, minimum=0)
    if port > 65535:
        raise ConfigError(f"{name} must be a TCP port (0-65535), got {port}")
    return port


def _repo(env: Mapping[str, str], name: str, default: str) -> str:
    value = get_str(env, PREFIX + name, default).strip().strip("/")
    if value.count("/") != 1 or not all(value.split("/")):
        raise ConfigError(f"{PREFIX}{name} must be owner/name, got {value!r}")
    return value


def _categories(env: Mapping[str, str], name: str) -> tuple[Category, ...]:
    raw = get_json_list(env, name)
    if not raw:
        return SYNCED
    chosen = []
    for value in raw:
        try:
            category = Category(value.strip())
        except ValueError:
            category = None
        if category not in SYNCED:
            raise ConfigError(
                f"{name}: {value!r} is not a synced category "
                f"(choose from {', '.join(c.value for c in SYNCED)})"
            )
        assert category is not None
        chosen.append(category)
    return tuple(c for c in SYNCED if c in chosen)


def _private_key(env: Mapping[str, str]) -> str | None:
    literal = env.get(PREFIX + "APP_PRIVATE_KEY")
    path = env.get(PREFIX + "APP_PRIVATE_KEY_PATH")
    if literal and path:
        raise ConfigError(
            f"set one of {PREFIX}APP_PRIVATE_KEY and {PREFIX}APP_PRIVATE_KEY_PATH, not both"
        )
    if path:
        try:
            literal = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{PREFIX}APP_PRIVATE_KEY_PATH: {exc.strerror}: {path}") from None
    if not literal:
        return None
    name = PREFIX + ("APP_PRIVATE_KEY_PATH" if path else "APP_PRIVATE_KEY")
    key = literal.replace("\\n", "\n").strip() + "\n"
    if not key.startswith("-----BEGIN"):
        raise ConfigError(f"{name}: the GitHub App private key must be a PEM (-----BEGIN ...)")
    try:  # sign once now, so a broken key is named at start rather than failing each run
        jwt.encode({"iss": "0"}, key, algorithm="RS256")
    except (ValueError, TypeError, jwt.PyJWTError):
        raise ConfigError(f"{name}: not a usable RSA private key (PEM)") from None
    return key


def _team(raw: str) -> str:
    return raw.rsplit("/", 1)[-1]


@frozen(kw_only=True)
class Config:
    primary_url: str
    primary_timeout: float = 30.0
    api_url: str = "https://api.github.com"
    token: str | None = field(default=None, repr=False)
    app_id: str | None = None
    app_installation_id: int | None = None
    app_private_key: str | None = field(default=None, repr=False)
    image_repo: str = IMAGE_REPO
    text_repo: str = TEXT_REPO
    base_branch: str = "main"
    #: per repository, from upstream's HORDE_MODEL_REFERENCE_*_GITHUB_REPO__BRANCH when
    #: BASE_BRANCH is unset (None: base_branch)
    image_base_branch: str | None = None
    text_base_branch: str | None = None
    categories: tuple[Category, ...] = SYNCED
    min_changes: int = 1
    max_removals: int = 10
    pr_labels: tuple[str, ...] = DEFAULT_LABELS
    pr_reviewers: tuple[str, ...] = ()
    pr_team_reviewers: tuple[str, ...] = ()
    delete_superseded_branches: bool = True
    commit_author_name: str = "Horde Model Reference Bot"
    commit_author_email: str = "bot@horde-model-reference.local"
    dry_run: bool = False
    no_pr: bool = False
    #: write context_window/interaction_modes/capabilities into models.csv and db.json
    export_text_metadata_columns: bool = False
    force: bool = False
    output_dir: Path | None = None
    watch: bool = False
    watch_startup_sync: bool = False
    watch_interval: float = 60.0
    watch_initial_delay: float = 0.0
    full_reconcile_interval: float = 21600.0
    #: seconds of the first retry backoff and its cap (GitHub 1-10 s, the PRIMARY 1-15 s)
    retry_backoff: float = 1.0
    max_rate_limit_wait: float = 120.0
    status_file: Path | None = None
    #: with --watch: serve /metrics and /readyz here (None: not served)
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"

    @property
    def has_credentials(self) -> bool:
        return bool(self.token) or bool(self.app_id and self.app_private_key)

    @property
    def offline(self) -> bool:
        """Dry runs and --no-pr runs need no credentials and write nothing to GitHub."""
        return self.dry_run or self.no_pr

    def repo_of(self, category: Category) -> str:
        return self.text_repo if category is Category.text_generation else self.image_repo

    def branch_of(self, repo: str) -> str:
        """The base branch of the repository `owner/name` (the pull requests' target)."""
        own = self.text_base_branch if repo == self.text_repo else self.image_base_branch
        return own or self.base_branch

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Config:
        """The config of HMR_GITHUB_SYNC_* and upstream's names; ConfigError names the
        variable of a value that cannot work, as the operator set it."""
        _check_names(environ)
        origins: dict[str, str] = {}
        env = resolve(environ, origins)
        try:
            return cls._read(env)
        except ConfigError as exc:
            raise ConfigError(_blame(str(exc), origins)) from None

    @classmethod
    def _read(cls, env: Mapping[str, str]) -> Config:
        primary = env.get(PREFIX + "PRIMARY_API_URL", "").strip()
        if not primary:
            raise ConfigError(
                f"{PREFIX}PRIMARY_API_URL (or {UPSTREAM}PRIMARY_API_URL) is required: "
                "the PRIMARY's base URL, e.g. https://models.aihorde.net/api"
            )
        installation = env.get(PREFIX + "APP_INSTALLATION_ID")
        if installation is not None and not installation.isdigit():
            raise ConfigError(f"{PREFIX}APP_INSTALLATION_ID must be a number")
        output = env.get(PREFIX + "OUTPUT_DIR")
        status = env.get(PREFIX + "STATUS_FILE")
        force = get_bool(env, PREFIX + "FORCE", False)
        labels = get_json_list(env, PREFIX + "PR_LABELS") or DEFAULT_LABELS
        return cls(
            primary_url=_url(PREFIX + "PRIMARY_API_URL", primary),
            primary_timeout=get_float(env, PREFIX + "PRIMARY_API_TIMEOUT", 30.0, minimum=0.1),
            api_url=_url(
                PREFIX + "API_URL", get_str(env, PREFIX + "API_URL", "https://api.github.com")
            ),
            token=env.get(PREFIX + "TOKEN") or None,
            app_id=env.get(PREFIX + "APP_ID") or None,
            app_installation_id=int(installation) if installation else None,
            app_private_key=_private_key(env),
            image_repo=_repo(env, "IMAGE_REPO", IMAGE_REPO),
            text_repo=_repo(env, "TEXT_REPO", TEXT_REPO),
            base_branch=get_str(env, PREFIX + "BASE_BRANCH", "main"),
            image_base_branch=env.get(PREFIX + "IMAGE_BASE_BRANCH"),
            text_base_branch=env.get(PREFIX + "TEXT_BASE_BRANCH"),
            categories=_categories(env, PREFIX + "CATEGORIES"),
            # values below 1 are taken as 1, as upstream does; --force sets 0
            min_changes=0 if force else max(1, get_int(env, PREFIX + "MIN_CHANGES", 1)),
            max_removals=get_int(env, PREFIX + "MAX_REMOVALS", 10, minimum=0),
            pr_labels=labels,
            pr_reviewers=get_json_list(env, PREFIX + "PR_REVIEWERS"),
            pr_team_reviewers=tuple(
                _team(t) for t in get_json_list(env, PREFIX + "PR_TEAM_REVIEWERS")
            ),
            delete_superseded_branches=get_bool(env, PREFIX + "DELETE_SUPERSEDED_BRANCHES", True),
            commit_author_name=get_str(
                env, PREFIX + "COMMIT_AUTHOR_NAME", "Horde Model Reference Bot"
            ),
            commit_author_email=get_str(
                env, PREFIX + "COMMIT_AUTHOR_EMAIL", "bot@horde-model-reference.local"
            ),
            dry_run=get_bool(env, PREFIX + "DRY_RUN", False),
            no_pr=get_bool(env, PREFIX + "NO_PR", False),
            export_text_metadata_columns=get_bool(
                env, PREFIX + "EXPORT_TEXT_METADATA_COLUMNS", False
            ),
            force=force,
            output_dir=Path(output) if output else None,
            watch=get_bool(env, PREFIX + "WATCH", False),
            watch_startup_sync=get_bool(env, PREFIX + "WATCH_STARTUP_SYNC", False),
            watch_interval=get_float(env, PREFIX + "WATCH_INTERVAL", 60.0, minimum=0.01),
            watch_initial_delay=get_float(env, PREFIX + "WATCH_INITIAL_DELAY", 0.0),
            full_reconcile_interval=get_float(
                env, PREFIX + "FULL_RECONCILE_INTERVAL", 21600.0, minimum=0.01
            ),
            retry_backoff=get_float(env, PREFIX + "RETRY_BACKOFF", 1.0),
            max_rate_limit_wait=get_float(env, PREFIX + "MAX_RATE_LIMIT_WAIT", 120.0),
            status_file=Path(status) if status else None,
            metrics_port=_port(env, PREFIX + "METRICS_PORT"),
            metrics_host=get_str(env, PREFIX + "METRICS_HOST", "127.0.0.1"),
        )


def describe(config: Config) -> str:
    """The settings a run uses, for its first log line (never a token or key)."""
    auth = (
        "app" if config.app_id and config.app_private_key else "token" if config.token else "none"
    )
    return json.dumps(
        {
            "primary": public_url(config.primary_url),
            "api": config.api_url,
            "auth": auth,
            "categories": [c.value for c in config.categories],
            "dry_run": config.dry_run,
            "no_pr": config.no_pr,
            "force": config.force,
        }
    )
