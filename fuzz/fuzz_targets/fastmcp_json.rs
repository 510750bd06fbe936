//! A `fastmcp.json` from a user's repository, at any place in it: it either parses into paths
//! that all stay inside the source (relative, no `..`, no empty folder), or fails with a
//! message that names the file.

#![no_main]

use libfuzzer_sys::fuzz_target;
use skyport_build::fuzzing::fastmcp_json;

/// Where the file sits: the top of the source, a folder, or places a path could climb from.
const FILES: [&str; 4] = [
    "fastmcp.json",
    "deploy/fastmcp.json",
    "a/b/prod.json",
    "../fastmcp.json",
];

fuzz_target!(|input: (u8, &str)| {
    let (at, text) = input;
    let file = FILES[usize::from(at) % FILES.len()];
    match fastmcp_json(file, text) {
        Ok(paths) => {
            for path in paths {
                assert!(
                    !path.starts_with('/')
                        && path
                            .split('/')
                            .all(|part| !matches!(part, "." | ".."))
                        && !path.contains("//"),
                    "{file} resolved the path {path:?}, which leaves the source\n{text}"
                );
            }
        }
        Err(message) => assert!(
            message.contains(file),
            "the failure does not name {file}: {message}"
        ),
    }
});
