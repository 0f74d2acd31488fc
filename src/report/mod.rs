//! Reporting back on GitHub: the tracking comment, labels, board moves, pull requests and check runs.
