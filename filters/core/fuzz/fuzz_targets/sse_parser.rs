//! The SSE parser never panics and sees the same events however the input is chunked.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_core::sse::SseParser;

fn parse(pieces: &[&[u8]]) -> Vec<(String, String)> {
    let mut parser = SseParser::new();
    let mut events = Vec::new();
    for piece in pieces {
        parser.push(piece, |e| events.push((e.event.to_string(), e.data.to_string())));
    }
    parser.finish(|e| events.push((e.event.to_string(), e.data.to_string())));
    events
}

fuzz_target!(|data: &[u8]| {
    let whole = parse(&[data]);
    let split = data.first().map_or(0, |b| *b as usize % (data.len() + 1));
    let (a, b) = data.split_at(split);
    assert_eq!(parse(&[a, b]), whole);
});
