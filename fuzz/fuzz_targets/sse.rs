//! The event-stream decoder on an instance's bytes: however the stream is cut into chunks, the
//! same events come out; and an encoded event decodes back to itself.

#![no_main]

use libfuzzer_sys::fuzz_target;
use skyport_mcp::sse::{Decoder, encode};

fuzz_target!(|input: (u16, &[u8])| {
    let (cut, bytes) = input;
    let whole = Decoder::default().feed(bytes);
    let cut = usize::from(cut) % (bytes.len() + 1);
    let mut decoder = Decoder::default();
    let mut pieces = decoder.feed(&bytes[..cut]);
    pieces.extend(decoder.feed(&bytes[cut..]));
    assert_eq!(whole, pieces);

    // Round trip: an event name without line breaks, data without carriage returns.
    let text = String::from_utf8_lossy(bytes);
    let (name, data) = text.split_at(
        text.char_indices()
            .nth(usize::from(cut) % 8)
            .map_or(text.len(), |(i, _)| i),
    );
    if name.contains(['\n', '\r']) || data.contains('\r') {
        return;
    }
    let events = Decoder::default().feed(encode(name, data).as_bytes());
    assert_eq!(events.len(), 1, "{name:?} {data:?}");
    assert_eq!(
        (events[0].event.as_str(), events[0].data.as_str()),
        (name, data)
    );
});
