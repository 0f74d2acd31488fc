//! Agent sessions: a git worktree, a rendered prompt, an agent process under limits, a log and an outcome.
