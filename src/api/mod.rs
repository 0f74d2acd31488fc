//! The operations endpoints: health, readiness, metrics and the admin `/api/` routes.

pub mod jobs;
