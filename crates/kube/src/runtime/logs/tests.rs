//! Log lines as the API sends them, and where a new stream resumes.

use futures_util::io::Cursor;

use super::*;

fn at(text: &str) -> Timestamp {
    text.parse().expect("a timestamp")
}

#[test]
fn the_timestamp_is_split_from_the_line() {
    assert_eq!(
        split_timestamp("2026-12-05T20:22:44.123456789Z hello world"),
        (Some(at("2026-12-05T20:22:44.123456789Z")), "hello world")
    );
    assert_eq!(
        split_timestamp("2026-12-05T20:22:44Z"),
        (Some(at("2026-12-05T20:22:44Z")), "")
    );
    assert_eq!(split_timestamp("no stamp here"), (None, "no stamp here"));
}

#[test]
fn a_new_stream_skips_what_was_written_of_its_first_second() {
    let mut resume = Resume::default();
    assert_eq!(resume.since(), None);
    let lines = [
        "2026-12-05T20:22:44.1Z",
        "2026-12-05T20:22:44.2Z",
        "2026-12-05T20:22:44.2Z",
    ];
    for line in lines {
        assert!(resume.admit(at(line)));
    }
    // Cut to the second, never rounded up past the last line.
    assert_eq!(resume.since(), Some(at("2026-12-05T20:22:44Z")));
    resume.reconnected();
    for line in lines {
        assert!(!resume.admit(at(line)), "{line} repeated");
    }
    // A third line at the same instant was not written before: it is new.
    assert!(resume.admit(at("2026-12-05T20:22:44.2Z")));
    assert!(resume.admit(at("2026-12-05T20:22:45.7Z")));
    assert_eq!(resume.since(), Some(at("2026-12-05T20:22:45Z")));
}

#[test]
fn a_follower_starting_from_the_store_skips_what_it_holds() {
    let mut resume = Resume::after(OutputEnd {
        at: at("2026-12-05T20:22:44.2Z"),
        lines: 2,
    });
    assert_eq!(resume.since(), Some(at("2026-12-05T20:22:44Z")));
    resume.reconnected();
    // The store keeps milliseconds: lines within the stored one count against it.
    for line in [
        "2026-12-05T20:22:44.1Z",
        "2026-12-05T20:22:44.2001Z",
        "2026-12-05T20:22:44.2002Z",
    ] {
        assert!(!resume.admit(at(line)), "{line} repeated");
    }
    assert!(resume.admit(at("2026-12-05T20:22:44.2003Z")));
    assert!(resume.admit(at("2026-12-05T20:22:44.3Z")));
}

#[tokio::test]
async fn a_long_line_is_cut_and_the_next_one_read_whole() {
    let text = format!("{}\nnext\n", "x".repeat(MAX_LINE * 2 + 10));
    let mut reader = Cursor::new(text.into_bytes());
    let mut buffer = Vec::new();
    assert!(read_line(&mut reader, &mut buffer).await.expect("read"));
    assert_eq!(buffer.len(), MAX_LINE);
    assert!(read_line(&mut reader, &mut buffer).await.expect("read"));
    assert_eq!(buffer, b"next");
    assert!(!read_line(&mut reader, &mut buffer).await.expect("read"));
}
