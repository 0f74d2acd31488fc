//! Pure renderers (todo).
