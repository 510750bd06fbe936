//! GitHub deliveries: the HMAC against RFC 4231 and GitHub's documented example, refused signatures,
//! and each event's payload read into what it builds.

use skyport_build::SourceEvent;

use super::*;

const SECRET: &[u8] = b"It's a Secret to Everybody";
const BODY: &[u8] = b"Hello, World!";
/// The example of GitHub's documentation on validating deliveries.
const SIGNATURE: &str = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

#[test]
fn hmac_matches_rfc_4231() {
    // Test case 2 of RFC 4231.
    assert_eq!(
        hex::encode(hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
    // Test case 6: a key longer than the block is hashed first.
    assert_eq!(
        hex::encode(hmac_sha256(
            &[0xaa; 131],
            b"Test Using Larger Than Block-Size Key - Hash Key First"
        )),
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
    );
}

#[test]
fn a_good_signature_is_accepted() {
    assert_eq!(verify(SECRET, BODY, Some(SIGNATURE)), Ok(()));
}

#[test]
fn bad_missing_and_malformed_signatures_are_refused() {
    assert_eq!(
        verify(b"another secret", BODY, Some(SIGNATURE)),
        Err(SignatureError::Mismatch)
    );
    assert_eq!(
        verify(SECRET, b"Hello, World?", Some(SIGNATURE)),
        Err(SignatureError::Mismatch)
    );
    assert_eq!(verify(SECRET, BODY, None), Err(SignatureError::Missing));
    let sha1 = SIGNATURE.replace("sha256=", "sha1=");
    for malformed in [
        sha1.as_str(),
        "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        "sha256=757107ea",
        "sha256=zz7107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
    ] {
        assert_eq!(
            verify(SECRET, BODY, Some(malformed)),
            Err(SignatureError::Malformed),
            "{malformed}"
        );
    }
}

const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

fn event(delivery: Result<Delivery, String>) -> SourceEvent {
    match delivery {
        Ok(Delivery::Event(event)) => event,
        other => panic!("not an event: {other:?}"),
    }
}

#[test]
fn pushes_name_their_branch_and_commit() {
    let body = format!(
        r#"{{"ref":"refs/heads/feature/x","before":"{SHA}","after":"{SHA}","deleted":false,"commits":[]}}"#
    );
    assert_eq!(
        event(parse("push", body.as_bytes())),
        SourceEvent::Pushed {
            branch: "feature/x".to_owned(),
            sha: SHA.to_owned()
        }
    );
}

#[test]
fn a_deleted_branch_is_gone() {
    let zeros = "0".repeat(40);
    let body =
        format!(r#"{{"ref":"refs/heads/old","before":"{SHA}","after":"{zeros}","deleted":true}}"#);
    assert_eq!(
        event(parse("push", body.as_bytes())),
        SourceEvent::BranchGone {
            branch: "old".to_owned()
        }
    );
}

#[test]
fn pull_requests_preview_their_head_and_closing_removes_it() {
    let pr = |action: &str| {
        format!(
            r#"{{"action":"{action}","number":7,"pull_request":{{"head":{{"ref":"fix-1","sha":"{SHA}"}},"base":{{"ref":"main"}}}}}}"#
        )
    };
    for action in ["opened", "reopened", "synchronize"] {
        assert_eq!(
            event(parse("pull_request", pr(action).as_bytes())),
            SourceEvent::PullRequest {
                branch: "fix-1".to_owned(),
                sha: SHA.to_owned()
            },
            "{action}"
        );
    }
    assert_eq!(
        event(parse("pull_request", pr("closed").as_bytes())),
        SourceEvent::BranchGone {
            branch: "fix-1".to_owned()
        }
    );
    assert!(matches!(
        parse("pull_request", pr("labeled").as_bytes()),
        Ok(Delivery::Ignored(reason)) if reason.contains("labeled")
    ));
}

#[test]
fn pings_tags_and_other_events_build_nothing() {
    assert_eq!(
        parse("ping", br#"{"zen":"Keep it simple."}"#),
        Ok(Delivery::Ping)
    );
    let tag = format!(r#"{{"ref":"refs/tags/v1","after":"{SHA}"}}"#);
    assert!(matches!(
        parse("push", tag.as_bytes()),
        Ok(Delivery::Ignored(reason)) if reason.contains("refs/tags/v1")
    ));
    assert!(matches!(
        parse("issues", b"{}"),
        Ok(Delivery::Ignored(reason)) if reason.contains("'issues'")
    ));
}

#[test]
fn malformed_payloads_say_what_is_wrong() {
    let err = parse("push", b"not json").unwrap_err();
    assert!(err.contains("not a GitHub webhook payload"), "{err}");
    let short = br#"{"ref":"refs/heads/main","after":"abc"}"#;
    let err = parse("push", short).unwrap_err();
    assert!(err.contains("not a full commit SHA"), "{err}");
    // Found while writing the `webhook` fuzz target's property: an empty `after` read as a
    // deleted branch (removing its preview), and `refs/heads/` as a push to a branch "".
    for (body, why) in [
        (
            r#"{"ref":"refs/heads/main","after":""}"#,
            "not a full commit SHA",
        ),
        (
            r#"{"ref":"refs/heads/main","after":"000"}"#,
            "not a full commit SHA",
        ),
        (
            r#"{"ref":"refs/heads/","after":"0123456789abcdef0123456789abcdef01234567"}"#,
            "names no branch",
        ),
    ] {
        let err = parse("push", body.as_bytes()).unwrap_err();
        assert!(err.contains(why), "{body}: {err}");
    }
    let headless = br#"{"action":"closed","pull_request":{"head":{"ref":"","sha":""}}}"#;
    let err = parse("pull_request", headless).unwrap_err();
    assert!(err.contains("names no branch"), "{err}");
}
