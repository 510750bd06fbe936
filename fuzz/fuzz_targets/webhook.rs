//! A GitHub webhook delivery whose signature checked out: whatever the body, reading it never
//! panics, and a push becomes exactly the branch and commit its JSON says (or nothing to
//! build, or an error), never anything else.

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::json;
use skyport_build::SourceEvent;
use skyport_web::fuzzing::github_delivery;

const EVENTS: [&str; 4] = ["push", "pull_request", "ping", "issues"];

fuzz_target!(|input: (u8, &[u8], &str, &str, bool)| {
    let (event, body, reference, after, deleted) = input;
    let event = EVENTS[usize::from(event) % EVENTS.len()];
    let _ = github_delivery(event, body);

    let push = json!({ "ref": reference, "after": after, "deleted": deleted });
    let read = github_delivery("push", push.to_string().as_bytes());
    let branch = reference.strip_prefix("refs/heads/");
    match read {
        Ok(Some(SourceEvent::Pushed { branch: got, sha })) => {
            assert_eq!(Some(got.as_str()), branch, "{push}");
            assert!(!got.is_empty(), "a push to no branch: {push}");
            assert!(!deleted, "a deletion became a push: {push}");
            assert_eq!(sha, after.to_ascii_lowercase(), "{push}");
            assert!(
                sha.len() == 40 && sha.bytes().all(|b| b.is_ascii_hexdigit()),
                "{push}"
            );
        }
        Ok(Some(SourceEvent::BranchGone { branch: got })) => {
            assert_eq!(Some(got.as_str()), branch, "{push}");
            assert!(!got.is_empty(), "no branch is gone: {push}");
            assert!(deleted || after == "0".repeat(40), "{push}");
        }
        Ok(Some(other)) => panic!("a push became {other:?}: {push}"),
        Ok(None) => assert!(branch.is_none(), "a push to a branch built nothing: {push}"),
        Err(_) => assert!(
            branch == Some("") || (branch.is_some() && !deleted),
            "only a branch push's branch or commit can be wrong: {push}"
        ),
    }
});
