//! Conformance of REST requests to GitHub's OpenAPI description (filled in below).

use crate::server::Req;

/// Checks a request against the API description; `Err` carries the reason.
pub(crate) fn check(_req: &Req) -> Result<(), String> {
    Ok(())
}

/// Loads the API description once per process.
pub(crate) fn load(_shared: &std::path::Path) -> anyhow::Result<()> {
    Ok(())
}
