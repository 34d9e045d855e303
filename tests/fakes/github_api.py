"""A fake GitHub REST API on loopback: the git data API, pulls, labels, reviewers, comments and
App tokens, all in memory, answering errors the way GitHub does.

`start_fake_github_api(aiohttp_server, legacy_dir)` serves the two Haidra-Org repositories with
`main` pointing at one commit holding `legacy_dir/image/*` and `legacy_dir/text/*`; `fake.url` is
the API base URL (HMR_GITHUB_SYNC_API_URL). Requests need `Authorization: Bearer {fake.token}`
(or an installation token it issued); reads without credentials pass while `public`; App routes need a JWT signed with `fake.app_public_key`.

Errors are GitHub's shapes: `{"message", "documentation_url"}` and for 422
`{"message": "Validation Failed", "errors": [...]}`; every answer carries `X-RateLimit-*` headers.

Switches for the failure paths:
- `fail(method, path_part, status, times=1, headers=None, message=None, errors=None,
  apply=False)`: the next
  `times` matching requests answer `status` (`apply=True`: the request takes effect first, as
  when GitHub creates the PR and the proxy in front of it then fails);
- `rate_limit(method, path_part, reset_in)`: one 403 with `X-RateLimit-Remaining: 0` and a reset
  `reset_in` seconds ahead; `secondary(method, path_part, retry_after)`: a secondary-limit 403;
- `after(method, path_part, action)`: run `action()` once, after the first matching request;
- `crash_after(method, path_part)`: once that request has been answered, every later one has
  its connection dropped (the sync process "dies" there) until `recover()`.

`requests` keeps (method, path_qs, headers, body) of every request.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import jwt
from aiohttp import web
from aiohttp.test_utils import TestServer
from aiohttp.typedefs import Handler

ServerFactory = Callable[[web.Application], Awaitable[TestServer]]

IMAGE = "Haidra-Org/AI-Horde-image-model-reference"
TEXT = "Haidra-Org/AI-Horde-text-model-reference"
DOCS = "https://docs.github.com/rest"


def git_sha(kind: str, data: bytes) -> str:
    return hashlib.sha1(b"%s %d\0" % (kind.encode(), len(data)) + data).hexdigest()


def _error(status: int, message: str, errors: list[dict[str, Any]] | None = None) -> web.Response:
    body: dict[str, Any] = {"message": message, "documentation_url": DOCS}
    if errors is not None:
        body["errors"] = errors
    return web.json_response(body, status=status)


class FakeRepo:
    def __init__(self, full_name: str) -> None:
        self.full_name = full_name
        self.blobs: dict[str, bytes] = {}
        self.trees: dict[str, dict[str, str]] = {}
        self.commits: dict[str, dict[str, Any]] = {}
        self.refs: dict[str, str] = {}
        self.pulls: list[dict[str, Any]] = []
        self.comments: dict[int, list[str]] = {}
        self.labels: dict[int, list[str]] = {}
        self.reviewers: dict[int, dict[str, list[str]]] = {}
        self.deleted_refs: list[str] = []

    def add_blob(self, data: bytes) -> str:
        sha = git_sha("blob", data)
        self.blobs[sha] = data
        return sha

    def add_tree(self, files: dict[str, str]) -> str:
        raw = b"".join(
            b"100644 %s\0" % path.encode() + bytes.fromhex(sha)
            for path, sha in sorted(files.items())
        )
        sha = git_sha("tree", raw)
        self.trees[sha] = dict(files)
        return sha

    def add_commit(self, tree: str, parents: list[str], message: str) -> str:
        text = f"tree {tree}\n" + "".join(f"parent {p}\n" for p in parents) + f"\n{message}"
        sha = git_sha("commit", f"{text}\n{len(self.commits)}".encode())
        self.commits[sha] = {"tree": tree, "parents": parents, "message": message}
        return sha

    def commit_files(self, branch: str, files: dict[str, bytes], message: str = "edit") -> str:
        """Commit `files` on top of `branch` (as a maintainer merging would) and move it."""
        parent = self.refs[f"heads/{branch}"]
        tree = dict(self.trees[self.commits[parent]["tree"]])
        tree.update({path: self.add_blob(data) for path, data in files.items()})
        sha = self.add_commit(self.add_tree(tree), [parent], message)
        self.refs[f"heads/{branch}"] = sha
        return sha

    def file(self, ref: str, path: str) -> bytes:
        """A file's bytes at a branch or commit."""
        commit = self.refs.get(f"heads/{ref}", ref)
        return self.blobs[self.trees[self.commits[commit]["tree"]][path]]

    def open_pulls(self) -> list[dict[str, Any]]:
        return [p for p in self.pulls if p["state"] == "open"]


class FakeGitHubApi:
    def __init__(self, legacy_dir: Path, token: str = "test-token") -> None:
        self.token = token
        self.public = True
        self.url = ""
        self.repos = {IMAGE: FakeRepo(IMAGE), TEXT: FakeRepo(TEXT)}
        for repo, folder in ((IMAGE, "image"), (TEXT, "text")):
            r = self.repos[repo]
            files = {p.name: r.add_blob(p.read_bytes()) for p in (legacy_dir / folder).iterdir()}
            r.refs["heads/main"] = r.add_commit(r.add_tree(files), [], "initial")
        self.requests: list[tuple[str, str, dict[str, str], Any]] = []
        self._faults: list[dict[str, Any]] = []
        self._crash_after: tuple[str, str] | None = None
        self._after: list[tuple[str, str, Callable[[], None]]] = []
        self.crashed = False
        self.app_id = "12345"
        self.installation_id = 777
        self.app_public_key: str | None = None
        self.installation_tokens: dict[str, float] = {}
        self._numbers = itertools.count(1)
        # GitHub takes blobs up to 100 MB; db.json alone is 1.1 MB
        self.app = web.Application(middlewares=[self._middleware], client_max_size=64 << 20)
        self._routes()

    # --- switches --------------------------------------------------------------------------------

    def fail(
        self,
        method: str,
        path_part: str,
        status: int,
        *,
        times: int = 1,
        headers: dict[str, str] | None = None,
        message: str | None = None,
        errors: list[dict[str, Any]] | None = None,
        apply: bool = False,
    ) -> None:
        self._faults.append(
            {
                "method": method,
                "part": path_part,
                "status": status,
                "times": times,
                "headers": headers or {},
                "message": message or ("Server Error" if status >= 500 else "Forbidden"),
                "apply": apply,
                "errors": errors,
            }
        )

    def rate_limit(self, method: str, path_part: str, reset_in: float) -> None:
        self.fail(
            method,
            path_part,
            403,
            headers={
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": str(int(time.time() + reset_in)),
            },
            message="API rate limit exceeded for installation ID 777.",
        )

    def secondary(self, method: str, path_part: str, retry_after: int) -> None:
        self.fail(
            method,
            path_part,
            403,
            headers={"Retry-After": str(retry_after)},
            message="You have exceeded a secondary rate limit. Please wait a few minutes.",
        )

    def crash_after(self, method: str, path_part: str) -> None:
        self._crash_after = (method, path_part)

    def after(self, method: str, path_part: str, action: Callable[[], None]) -> None:
        """Run `action` once, right after the first matching request is answered (a maintainer
        pushing to the base branch mid-run, say)."""
        self._after.append((method, path_part, action))

    def recover(self) -> None:
        self._crash_after = None
        self.crashed = False

    def calls(self, method: str, path_part: str) -> int:
        return sum(1 for m, p, _h, _b in self.requests if m == method and path_part in p)

    # --- plumbing --------------------------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        body = None
        if request.can_read_body:
            try:
                body = await request.json()
            except ValueError:
                return _error(400, "Problems parsing JSON")
        self.requests.append((request.method, request.path_qs, dict(request.headers), body))
        if self.crashed:
            assert request.transport is not None
            request.transport.close()
            return web.Response(status=500)
        auth = self._authorized(request)
        if auth is not None:
            return auth
        fault = next(
            (
                f
                for f in self._faults
                if f["times"] > 0 and f["method"] == request.method and f["part"] in request.path
            ),
            None,
        )
        response: web.StreamResponse
        if fault is not None and not fault["apply"]:
            fault["times"] -= 1
            response = _error(fault["status"], fault["message"], fault["errors"])
            response.headers.update(fault["headers"])
        else:
            response = await handler(request)
            if fault is not None:
                fault["times"] -= 1
                response = _error(fault["status"], fault["message"], fault["errors"])
                response.headers.update(fault["headers"])
        response.headers.setdefault("X-RateLimit-Limit", "5000")
        response.headers.setdefault("X-RateLimit-Remaining", "4999")
        response.headers.setdefault("X-RateLimit-Reset", str(int(time.time()) + 3600))
        for hook in list(self._after):
            if hook[0] == request.method and hook[1] in request.path:
                self._after.remove(hook)
                hook[2]()
        crash = self._crash_after
        if crash is not None and crash[0] == request.method and crash[1] in request.path:
            self.crashed = True
        return response

    def _authorized(self, request: web.Request) -> web.Response | None:
        header = request.headers.get("Authorization", "")
        if not header and request.method == "GET" and self.public:
            return None  # public repositories answer reads without credentials
        if not header.startswith("Bearer "):
            return _error(401, "Requires authentication")
        credential = header.removeprefix("Bearer ")
        if request.path.startswith("/app/") or request.path.endswith("/installation"):
            if self.app_public_key is None:
                return _error(401, "A JSON web token could not be decoded")
            try:
                claims = jwt.decode(credential, self.app_public_key, algorithms=["RS256"])
            except jwt.PyJWTError:
                return _error(401, "A JSON web token could not be decoded")
            if str(claims.get("iss")) != self.app_id:
                return _error(401, "'Issuer' claim ('iss') must be an Integer")
            return None
        if credential == self.token or credential in self.installation_tokens:
            return None
        return _error(401, "Bad credentials")

    def _repo(self, request: web.Request) -> FakeRepo:
        full = f"{request.match_info['owner']}/{request.match_info['name']}"
        if full not in self.repos:
            raise web.HTTPNotFound(
                text=json.dumps({"message": "Not Found", "documentation_url": DOCS}),
                content_type="application/json",
            )
        return self.repos[full]

    def _routes(self) -> None:
        r = self.app.router
        repo = "/repos/{owner}/{name}"
        r.add_get(repo + "/git/ref/heads/{branch:.+}", self._get_ref)
        r.add_get(repo + "/git/commits/{sha}", self._get_commit)
        r.add_get(repo + "/git/trees/{sha}", self._get_tree)
        r.add_get(repo + "/git/blobs/{sha}", self._get_blob)
        r.add_post(repo + "/git/blobs", self._post_blob)
        r.add_post(repo + "/git/trees", self._post_tree)
        r.add_post(repo + "/git/commits", self._post_commit)
        r.add_post(repo + "/git/refs", self._post_ref)
        r.add_delete(repo + "/git/refs/heads/{branch:.+}", self._delete_ref)
        r.add_get(repo + "/pulls", self._list_pulls)
        r.add_post(repo + "/pulls", self._post_pull)
        r.add_patch(repo + "/pulls/{number}", self._patch_pull)
        r.add_post(repo + "/pulls/{number}/requested_reviewers", self._post_reviewers)
        r.add_post(repo + "/issues/{number}/labels", self._post_labels)
        r.add_post(repo + "/issues/{number}/comments", self._post_comment)
        r.add_get(repo + "/installation", self._get_installation)
        r.add_post("/app/installations/{id}/access_tokens", self._post_token)

    # --- git data --------------------------------------------------------------------------------

    async def _get_ref(self, request: web.Request) -> web.Response:
        repo = self._repo(request)
        ref = "heads/" + request.match_info["branch"]
        if ref not in repo.refs:
            return _error(404, "Not Found")
        sha = repo.refs[ref]
        return web.json_response({"ref": f"refs/{ref}", "object": {"sha": sha, "type": "commit"}})

    async def _get_commit(self, request: web.Request) -> web.Response:
        repo = self._repo(request)
        commit = repo.commits.get(request.match_info["sha"])
        if commit is None:
            return _error(404, "Not Found")
        return web.json_response(
            {
                "sha": request.match_info["sha"],
                "tree": {"sha": commit["tree"]},
                "parents": [{"sha": p} for p in commit["parents"]],
                "message": commit["message"],
            }
        )

    async def _get_tree(self, request: web.Request) -> web.Response:
        repo = self._repo(request)
        tree = repo.trees.get(request.match_info["sha"])
        if tree is None:
            return _error(404, "Not Found")
        entries = [
            {"path": p, "mode": "100644", "type": "blob", "sha": s, "size": len(repo.blobs[s])}
            for p, s in sorted(tree.items())
        ]
        return web.json_response(
            {"sha": request.match_info["sha"], "tree": entries, "truncated": False}
        )

    async def _get_blob(self, request: web.Request) -> web.Response:
        repo = self._repo(request)
        data = repo.blobs.get(request.match_info["sha"])
        if data is None:
            return _error(404, "Not Found")
        # GitHub wraps base64 at 60 characters
        encoded = base64.b64encode(data).decode()
        wrapped = "\n".join(encoded[i : i + 60] for i in range(0, len(encoded), 60))
        return web.json_response(
            {
                "sha": request.match_info["sha"],
                "size": len(data),
                "content": wrapped,
                "encoding": "base64",
            }
        )

    async def _post_blob(self, request: web.Request) -> web.Response:
        repo = self._repo(request)
        body = await request.json()
        if body.get("encoding") != "base64" or not isinstance(body.get("content"), str):
            return _error(422, "Validation Failed", [{"resource": "Blob", "code": "invalid"}])
        sha = repo.add_blob(base64.b64decode(body["content"]))
        return web.json_response({"sha": sha}, status=201)

    async def _post_tree(self, request: web.Request) -> web.Response:
        repo = self._repo(request)
        body = await request.json()
        base = body.get("base_tree")
        if base is not None and base not in repo.trees:
            return _error(422, "Invalid tree info", [{"resource": "Tree", "code": "invalid"}])
        files = dict(repo.trees.get(base, {}))
        for entry in body.get("tree") or []:
            if entry.get("sha") is None:
                files.pop(entry["path"], None)
            elif entry["sha"] not in repo.blobs:
                return _error(422, "Invalid tree info")
            else:
                files[entry["path"]] = entry["sha"]
        return web.json_response({"sha": repo.add_tree(files)}, status=201)

    async def _post_commit(self, request: web.Request) -> web.Response:
        repo = self._repo(request)
        body = await request.json()
        if body.get("tree") not in repo.trees or any(
            p not in repo.commits for p in body.get("parents") or []
        ):
            return _error(422, "Validation Failed", [{"resource": "Commit", "code": "invalid"}])
        sha = repo.add_commit(body["tree"], list(body.get("parents") or []), body["message"])
        repo.commits[sha]["author"] = body.get("author")
        return web.json_response({"sha": sha, "tree": {"sha": body["tree"]}}, status=201)

    async def _post_ref(self, request: web.Request) -> web.Response:
        repo = self._repo(request)
        body = await request.json()
        ref = str(body.get("ref") or "")
        if not ref.startswith("refs/heads/") or body.get("sha") not in repo.commits:
            return _error(422, "Validation Failed")
        if ref.removeprefix("refs/") in repo.refs:
            return _error(422, "Reference already exists")
        repo.refs[ref.removeprefix("refs/")] = body["sha"]
        return web.json_response({"ref": ref, "object": {"sha": body["sha"]}}, status=201)

    async def _delete_ref(self, request: web.Request) -> web.Response:
        repo = self._repo(request)
        ref = "heads/" + request.match_info["branch"]
        if ref not in repo.refs:
            return _error(422, "Reference does not exist")
        del repo.refs[ref]
        repo.deleted_refs.append(request.match_info["branch"])
        return web.Response(status=204)

    # --- pulls and issues --------------------------------------------------------------------------

    def _pull_json(self, repo: FakeRepo, pull: dict[str, Any]) -> dict[str, Any]:
        ref = pull["head"]
        sha = repo.refs.get(f"heads/{ref}", pull["head_sha"])
        return {
            "number": pull["number"],
            "state": pull["state"],
            "title": pull["title"],
            "body": pull["body"],
            "html_url": f"https://github.com/{repo.full_name}/pull/{pull['number']}",
            "head": {"ref": ref, "sha": sha, "repo": {"full_name": repo.full_name}},
            "base": {"ref": pull["base"]},
        }

    async def _list_pulls(self, request: web.Request) -> web.Response:
        repo = self._repo(request)
        state = request.query.get("state", "open")
        per_page = int(request.query.get("per_page", "30"))
        page = int(request.query.get("page", "1"))
        head = request.query.get("head")
        pulls = [p for p in repo.pulls if state == "all" or p["state"] == state]
        if head is not None:
            owner = repo.full_name.split("/")[0]
            pulls = [p for p in pulls if f"{owner}:{p['head']}" == head]
        pulls = sorted(pulls, key=lambda p: p["number"], reverse=True)
        chunk = pulls[(page - 1) * per_page : page * per_page]
        resp = web.json_response([self._pull_json(repo, p) for p in chunk])
        if page * per_page < len(pulls):
            next_url = request.url.update_query(page=str(page + 1))
            resp.headers["Link"] = f'<{next_url}>; rel="next"'
        return resp

    async def _post_pull(self, request: web.Request) -> web.Response:
        repo = self._repo(request)
        body = await request.json()
        head, base = body.get("head"), body.get("base")
        owner = repo.full_name.split("/")[0]
        if isinstance(head, str) and head.startswith(owner + ":"):
            head = head.split(":", 1)[1]
        if f"heads/{head}" not in repo.refs or f"heads/{base}" not in repo.refs:
            return _error(
                422,
                "Validation Failed",
                [{"resource": "PullRequest", "field": "head", "code": "invalid"}],
            )
        if any(p["head"] == head for p in repo.open_pulls()):
            return _error(
                422,
                "Validation Failed",
                [
                    {
                        "resource": "PullRequest",
                        "code": "custom",
                        "message": f"A pull request already exists for {owner}:{head}.",
                    }
                ],
            )
        pull = {
            "number": next(self._numbers),
            "state": "open",
            "title": body.get("title"),
            "body": body.get("body"),
            "head": head,
            "head_sha": repo.refs[f"heads/{head}"],
            "base": base,
        }
        repo.pulls.append(pull)
        return web.json_response(self._pull_json(repo, pull), status=201)

    def _pull(self, repo: FakeRepo, request: web.Request) -> dict[str, Any] | None:
        number = int(request.match_info["number"])
        return next((p for p in repo.pulls if p["number"] == number), None)

    async def _patch_pull(self, request: web.Request) -> web.Response:
        repo = self._repo(request)
        pull = self._pull(repo, request)
        if pull is None:
            return _error(404, "Not Found")
        body = await request.json()
        if "state" in body:
            pull["state"] = body["state"]
        return web.json_response(self._pull_json(repo, pull))

    async def _post_reviewers(self, request: web.Request) -> web.Response:
        repo = self._repo(request)
        pull = self._pull(repo, request)
        if pull is None:
            return _error(404, "Not Found")
        body = await request.json()
        got = repo.reviewers.setdefault(pull["number"], {"reviewers": [], "team_reviewers": []})
        for key in ("reviewers", "team_reviewers"):
            got[key] += body.get(key) or []
        return web.json_response(self._pull_json(repo, pull), status=201)

    async def _post_labels(self, request: web.Request) -> web.Response:
        repo = self._repo(request)
        pull = self._pull(repo, request)
        if pull is None:
            return _error(404, "Not Found")
        body = await request.json()
        if not isinstance(body, dict) or not isinstance(body.get("labels"), list):
            return _error(422, "Invalid request.\n\nFor 'links/0/schema', nil is not an object.")
        labels = repo.labels.setdefault(pull["number"], [])
        labels += [label for label in body["labels"] if label not in labels]
        return web.json_response([{"name": label} for label in labels])

    async def _post_comment(self, request: web.Request) -> web.Response:
        repo = self._repo(request)
        pull = self._pull(repo, request)
        if pull is None:
            return _error(404, "Not Found")
        body = await request.json()
        repo.comments.setdefault(pull["number"], []).append(body["body"])
        return web.json_response({"id": 1, "body": body["body"]}, status=201)

    # --- GitHub App ------------------------------------------------------------------------------

    async def _get_installation(self, request: web.Request) -> web.Response:
        self._repo(request)
        return web.json_response({"id": self.installation_id})

    async def _post_token(self, request: web.Request) -> web.Response:
        if int(request.match_info["id"]) != self.installation_id:
            return _error(404, "Not Found")
        token = f"ghs_{len(self.installation_tokens)}_installation"
        expires = time.time() + 3600
        self.installation_tokens[token] = expires
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expires))
        return web.json_response({"token": token, "expires_at": stamp}, status=201)


async def start_fake_github_api(aiohttp_server: ServerFactory, legacy_dir: Path) -> FakeGitHubApi:
    """Serve a FakeGitHubApi on 127.0.0.1 (via pytest-aiohttp's `aiohttp_server`)."""
    fake = FakeGitHubApi(legacy_dir)
    server = await aiohttp_server(fake.app)
    fake.url = str(server.make_url("")).rstrip("/")
    return fake
