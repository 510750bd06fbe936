//! The event-stream parser over the byte splits a network can produce.

use serde_json::json;

use super::*;

fn line_json(id: i64, text: &str) -> String {
    json!({
        "id": id, "at": "2025-01-01T00:00:00Z", "source": "build", "stream": "skyport",
        "phase": "install", "deployment": null, "instance": null, "line": text
    })
    .to_string()
}

fn all_events(chunks: &[&[u8]]) -> (Vec<LogEvent>, Option<i64>) {
    let mut parser = Parser::default();
    let mut events = Vec::new();
    for chunk in chunks {
        parser.push(chunk);
        while let Some(event) = parser.next_event().expect("parse") {
            events.push(event);
        }
    }
    (events, parser.last_id)
}

#[test]
fn lines_are_parsed_across_chunk_boundaries_and_keep_their_cursor() {
    let stream = format!(
        ": keep-alive\n\nid: 7\ndata: {}\n\nid:8\ndata:{}\n\nevent: other\ndata: {{}}\n\n",
        line_json(7, "resolving"),
        line_json(8, "installing")
    );
    let bytes = stream.as_bytes();
    for split in [1, 5, 17, bytes.len() / 2, bytes.len() - 1] {
        let (events, cursor) = all_events(&[&bytes[..split], &bytes[split..]]);
        let texts: Vec<&str> = events
            .iter()
            .map(|e| match e {
                LogEvent::Line(line) => line.line.as_str(),
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(texts, ["resolving", "installing"], "split at {split}");
        assert_eq!(cursor, Some(8));
    }
}

#[test]
fn crlf_streams_and_multi_line_data_are_understood() {
    let stream = format!("id: 3\r\ndata: {}\r\n\r\n", line_json(3, "x"));
    let (events, cursor) = all_events(&[stream.as_bytes()]);
    assert_eq!(events.len(), 1);
    assert_eq!(cursor, Some(3));
    let json = line_json(4, "split");
    let (head, tail) = json.split_at(json.find(',').unwrap() + 1);
    let stream = format!("data: {head}\ndata: {tail}\n\n");
    let (events, _) = all_events(&[stream.as_bytes()]);
    assert!(matches!(events.as_slice(), [LogEvent::Line(l)] if l.line == "split"));

    let mut parser = Parser::default();
    parser.push(b"data: {\"not\": \"a line\"}\n\n");
    assert!(
        parser.next_event().is_err(),
        "an unknown shape must be an error, not skipped"
    );
}

#[test]
fn the_end_event_carries_the_deployment() {
    let deployment = json!({
        "id": "dep_01j00000000000000000000000", "server": "hello", "status": "failed",
        "live": false, "phase": "install", "source": "upload:upl_x", "entrypoint": null,
        "failure": {"kind": "cancelled", "message": "cancelled by request"},
        "inspection": null, "created_at": "2025-01-01T00:00:00Z", "started_at": null,
        "finished_at": null
    });
    let stream = format!("event: end\ndata: {deployment}\n\n");
    let (events, cursor) = all_events(&[stream.as_bytes()]);
    match events.as_slice() {
        [LogEvent::End(d)] => assert_eq!(
            d.failure.as_ref().map(|f| f.message.as_str()),
            Some("cancelled by request")
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(cursor, None, "an end event is not a line cursor");
}
