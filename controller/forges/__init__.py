"""Status on the forge: the plan as a pull-request comment, commit statuses on PR heads and on
the revisions the controller applies (GitHub, GitLab, Gitea/Forgejo).

- `settings`: the `[forge]` table of `patchctl.toml` and the matching `serve` options;
- `events`: pull-request webhook payloads as `PullRequest` values (pure);
- `clients`: one small HTTP client per forge, the only code that talks to its API.

The queue that makes those calls on its own thread (`controller.runtime.forge_publisher`) plans
pull requests on the live fleet, so it lives in `runtime/`: this package imports nothing of
`runtime/` and sits below it in the import-linter layers.
"""
