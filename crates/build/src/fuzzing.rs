//! The crate-private parsers the fuzz targets in `fuzz/` drive, behind the `fuzzing` feature
//! (hidden from the docs). Only `fuzz/Cargo.toml` turns the feature on; nothing in the
//! workspace may call this module.

/// Parses `text` as the `fastmcp.json` at `file` (relative to the source root): every path it
/// names, resolved against the source root (source, requirements, project, editable folders),
/// or the failure's message.
pub fn fastmcp_json(file: &str, text: &str) -> Result<Vec<String>, String> {
    let project = crate::config::parse(file, text).map_err(|failure| failure.message)?;
    let environment = project.environment;
    Ok(project
        .source_path
        .into_iter()
        .chain(environment.requirements)
        .chain(environment.project)
        .chain(environment.editable)
        .collect())
}
