//! An entrypoint as a user writes it (`--entrypoint`, a form): an accepted one names a file
//! inside the source (relative, no `..`, no empty or `.` folder) or a dotted module of Python
//! identifiers, and parses back from how it is shown to the same entrypoint.

#![no_main]

use libfuzzer_sys::fuzz_target;
use skyport_build::{Entrypoint, Target};

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fuzz_target!(|text: &str| {
    let Ok(entrypoint) = text.parse::<Entrypoint>() else {
        return;
    };
    match entrypoint.target() {
        Target::File(path) | Target::Config(path) => {
            assert!(!path.starts_with('/'), "{text:?} gave the absolute {path:?}");
            assert!(!path.contains(['\\', '\0']), "{text:?} gave {path:?}");
            assert!(
                path.split('/').all(|part| !matches!(part, "" | "." | "..")),
                "{text:?} gave {path:?}, which does not stay a plain path inside the source"
            );
        }
        Target::Module(module) => {
            assert!(module.split('.').all(is_identifier), "{text:?} gave {module:?}");
        }
    }
    if let Some(object) = entrypoint.object() {
        assert!(is_identifier(object), "{text:?} gave the object {object:?}");
    }
    let shown = entrypoint.to_string();
    assert_eq!(
        shown.parse::<Entrypoint>().ok().as_ref(),
        Some(&entrypoint),
        "{text:?} is shown as {shown:?}, which does not read back"
    );
});
