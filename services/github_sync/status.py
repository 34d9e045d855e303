"""What operators see of the sync: a status line per run and a small JSON status file."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from attrs import define

from .sync import RunReport


def _iso(ts: float | None) -> str | None:
    return None if ts is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


@define
class SyncStatus:
    """Counters across the runs of one process (a watch keeps them; --once has one run)."""

    runs: int = 0
    failed_runs: int = 0
    changes_found: int = 0
    prs_opened: int = 0
    prs_closed: int = 0
    last_run: float | None = None
    last_success: float | None = None
    last_report: RunReport | None = None

    def record(self, report: RunReport) -> None:
        self.runs += 1
        self.last_run = report.finished
        self.last_report = report
        self.changes_found += report.changes_found
        self.prs_opened += report.prs_opened
        self.prs_closed += report.prs_closed
        if report.ok:
            self.last_success = report.finished
        else:
            self.failed_runs += 1

    def line(self) -> str:
        report = self.last_report
        head = report.status_line() if report is not None else "github-sync: no run yet"
        return f"{head}; last success {_iso(self.last_success) or 'never'}"

    def as_json(self) -> dict[str, object]:
        report = self.last_report
        return {
            "runs": self.runs,
            "failed_runs": self.failed_runs,
            "changes_found": self.changes_found,
            "prs_opened": self.prs_opened,
            "prs_closed": self.prs_closed,
            "last_run": _iso(self.last_run),
            "last_success": _iso(self.last_success),
            "last_ok": None if report is None else report.ok,
            "repositories": []
            if report is None
            else [
                {
                    "repo": o.repo,
                    "status": o.status,
                    "changes": o.total,
                    "branch": o.branch,
                    "pr": o.pr_url,
                    "closed": o.closed,
                    "error": o.error,
                }
                for o in report.outcomes
            ],
        }

    def write(self, path: Path) -> None:
        """Replace the status file atomically (a monitor never reads half of it)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.as_json(), indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path)
