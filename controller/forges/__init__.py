"""Status on the forge: the plan as a pull-request comment, commit statuses on PR heads and on
the revisions the controller applies (GitHub, GitLab, Gitea/Forgejo).

- `settings`: the `[forge]` table of `patchctl.toml` and the matching `serve` options;
- `events`: pull-request webhook payloads as `PullRequest` values (pure);
- `clients`: one small HTTP client per forge, the only code that talks to its API;
- `publisher`: the queue that makes those calls on its own thread, with retries, so that the
  webhook answer and the reconcile loop never wait for a forge.
"""
