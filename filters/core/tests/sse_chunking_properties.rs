//! Property tests: however the network chunks a stream, the parser and the translators see
//! the same events and write the same bytes.

mod common;

use common::all_cases;
use proptest::prelude::*;
use tollgate_core::sse::SseParser;
use tollgate_core::translate::StreamTranslator;

/// Cuts `bytes` at the given (unsorted, possibly repeated) positions.
fn chunked<'a>(bytes: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    cuts.sort_unstable();
    let mut pieces = Vec::new();
    let mut at = 0;
    for cut in cuts {
        pieces.push(&bytes[at..cut]);
        at = cut;
    }
    pieces.push(&bytes[at..]);
    pieces
}

fn parse(pieces: &[&[u8]]) -> Vec<(String, String)> {
    let mut parser = SseParser::new();
    let mut events = Vec::new();
    for piece in pieces {
        parser.push(piece, |e| {
            events.push((e.event.to_string(), e.data.to_string()))
        });
    }
    parser.finish(|e| events.push((e.event.to_string(), e.data.to_string())));
    events
}

fn event_stream() -> impl Strategy<Value = (Vec<(String, String)>, Vec<u8>)> {
    let event = ("[a-z_]{0,12}", "[ -~]{0,40}");
    let line_end = prop_oneof![Just("\n"), Just("\r\n"), Just("\r")];
    prop::collection::vec((event, line_end, any::<bool>()), 0..12).prop_map(|events| {
        let mut bytes = Vec::new();
        let mut expected = Vec::new();
        for ((name, data), eol, with_comment) in events {
            if with_comment {
                bytes.extend_from_slice(format!(": keep-alive{eol}").as_bytes());
            }
            if !name.is_empty() {
                bytes.extend_from_slice(format!("event: {name}{eol}").as_bytes());
            }
            bytes.extend_from_slice(format!("data: {data}{eol}{eol}").as_bytes());
            let name = if name.is_empty() {
                "message".to_string()
            } else {
                name
            };
            expected.push((name, data));
        }
        (expected, bytes)
    })
}

proptest! {
    #[test]
    fn parser_sees_the_same_events_whatever_the_chunking(
        (expected, bytes) in event_stream(),
        cuts in prop::collection::vec(any::<usize>(), 0..16),
    ) {
        prop_assert_eq!(parse(&chunked(&bytes, &cuts)), expected);
    }

    #[test]
    fn translators_write_the_same_bytes_whatever_the_chunking(
        cuts in prop::collection::vec(any::<usize>(), 0..24),
    ) {
        for case in all_cases() {
            let Some(sse) = case.read("upstream_response.sse") else { continue };
            let context = case.context("fixture-model");
            let Some(mut whole) = StreamTranslator::for_provider(case.provider.kind, &context) else { continue };
            let Some(mut pieces) = StreamTranslator::for_provider(case.provider.kind, &context) else { continue };
            let (mut expected, mut actual) = (Vec::new(), Vec::new());
            whole.push(&sse, &mut expected);
            whole.finish(&mut expected);
            for piece in chunked(&sse, &cuts) {
                pieces.push(piece, &mut actual);
            }
            pieces.finish(&mut actual);
            prop_assert_eq!(&actual, &expected, "{}", case.name);
            prop_assert_eq!(whole.usage(), pieces.usage());
        }
    }
}
