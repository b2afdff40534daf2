//! An incremental parser for server-sent events (the `text/event-stream` format).
//!
//! Upstream bytes arrive in arbitrary chunks: an event, a line, even a CRLF pair can be split
//! across `on_http_response_body` calls. The parser keeps the unfinished tail in a carry-over
//! buffer and hands out each complete event once. Buffers are reused, so steady-state parsing
//! allocates nothing per byte or per event.
//!
//! The carry-over is capped ([`MAX_EVENT_BYTES`]): a provider that never ends its line or its
//! event cannot grow a stream's memory without bound. Over the cap the parser stops and says so
//! ([`SseParser::overflowed`]); the translators then end the client's stream with an error.

/// Largest event (its unfinished line plus its `data:` lines so far) the parser holds, in bytes.
/// Envoy's default buffer limit; a Gemini event carries whole function calls, so it is generous.
pub const MAX_EVENT_BYTES: usize = 1024 * 1024;

/// One complete event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SseEvent<'a> {
    /// The `event:` field, or `message` when absent.
    pub event: &'a str,
    /// The `data:` lines joined with `\n`.
    pub data: &'a str,
}

/// Incremental SSE parser with a carry-over buffer.
#[derive(Debug, Default)]
pub struct SseParser {
    /// Bytes of an unfinished line from previous chunks.
    pending_line: Vec<u8>,
    /// The event being assembled: `event:` value.
    event: String,
    /// The event being assembled: `data:` lines joined with `\n`.
    data: String,
    /// Whether the event being assembled has at least one `data:` field.
    has_data: bool,
    /// The previous chunk ended in `\r`: a `\n` starting the next chunk belongs to it.
    skip_leading_lf: bool,
    /// An event outgrew [`MAX_EVENT_BYTES`]: everything after it is dropped.
    overflowed: bool,
}

impl SseParser {
    /// A parser with nothing pending.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether an event outgrew [`MAX_EVENT_BYTES`]; the parser has delivered nothing since.
    pub fn overflowed(&self) -> bool {
        self.overflowed
    }

    /// Feeds a chunk; calls `on_event` for every event it completes, in order.
    pub fn push(&mut self, mut chunk: &[u8], mut on_event: impl FnMut(SseEvent<'_>)) {
        if self.overflowed {
            return;
        }
        if self.skip_leading_lf && !chunk.is_empty() {
            self.skip_leading_lf = false;
            if let Some(rest) = chunk.strip_prefix(b"\n") {
                chunk = rest;
            }
        }
        while let Some(end) = chunk.iter().position(|&b| b == b'\n' || b == b'\r') {
            let line_end_len = if chunk[end] == b'\r' {
                match chunk.get(end + 1) {
                    Some(b'\n') => 2,
                    Some(_) => 1,
                    None => {
                        self.skip_leading_lf = true;
                        1
                    }
                }
            } else {
                1
            };
            if self.pending_line.is_empty() {
                self.process_line(&chunk[..end], &mut on_event);
            } else {
                let mut line = std::mem::take(&mut self.pending_line);
                line.extend_from_slice(&chunk[..end]);
                self.process_line(&line, &mut on_event);
                line.clear();
                self.pending_line = line;
            }
            chunk = &chunk[end + line_end_len..];
            if self.overflowed {
                return;
            }
        }
        if self.pending_line.len() + chunk.len() + self.data.len() > MAX_EVENT_BYTES {
            self.overflow();
            return;
        }
        self.pending_line.extend_from_slice(chunk);
    }

    fn overflow(&mut self) {
        self.overflowed = true;
        // Free the memory now: nothing more is parsed.
        self.pending_line = Vec::new();
        self.data = String::new();
        self.event = String::new();
        self.has_data = false;
    }

    /// Ends the stream: an event left without its closing blank line is delivered, as browsers'
    /// EventSource does not, but providers sometimes close right after the last `data:` line.
    pub fn finish(&mut self, mut on_event: impl FnMut(SseEvent<'_>)) {
        if self.overflowed {
            return;
        }
        if !self.pending_line.is_empty() {
            let line = std::mem::take(&mut self.pending_line);
            self.process_line(&line, &mut on_event);
        }
        self.dispatch(&mut on_event);
    }

    fn process_line(&mut self, line: &[u8], on_event: &mut impl FnMut(SseEvent<'_>)) {
        if line.is_empty() {
            self.dispatch(on_event);
            return;
        }
        if line[0] == b':' {
            return; // comment, e.g. a keep-alive
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        let value = String::from_utf8_lossy(value);
        match field {
            b"data" => {
                if self.data.len() + value.len() + 1 > MAX_EVENT_BYTES {
                    self.overflow();
                    return;
                }
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(&value);
                self.has_data = true;
            }
            b"event" => {
                self.event.clear();
                self.event.push_str(&value);
            }
            _ => {} // id, retry and unknown fields do not matter to a translator
        }
    }

    fn dispatch(&mut self, on_event: &mut impl FnMut(SseEvent<'_>)) {
        if self.has_data {
            let event = if self.event.is_empty() {
                "message"
            } else {
                self.event.as_str()
            };
            on_event(SseEvent {
                event,
                data: &self.data,
            });
        }
        self.event.clear();
        self.data.clear();
        self.has_data = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn parse_in_pieces(pieces: &[&[u8]]) -> Vec<(String, String)> {
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

    fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(e, d)| (e.to_string(), d.to_string()))
            .collect()
    }

    #[test]
    fn events_are_split_on_blank_lines_with_their_names() {
        let events = parse_in_pieces(&[b"event: ping\ndata: {}\n\ndata: {\"a\":1}\n\n"]);
        assert_eq!(events, owned(&[("ping", "{}"), ("message", "{\"a\":1}")]));
    }

    #[test]
    fn crlf_and_lone_cr_line_endings_are_accepted() {
        let events = parse_in_pieces(&[b"event: a\r\ndata: 1\r\n\r\nevent: b\rdata: 2\r\r"]);
        assert_eq!(events, owned(&[("a", "1"), ("b", "2")]));
    }

    #[test]
    fn a_crlf_split_between_chunks_is_one_line_ending() {
        let events = parse_in_pieces(&[b"data: 1\r", b"\n\r", b"\ndata: 2\r\n\r\n"]);
        assert_eq!(events, owned(&[("message", "1"), ("message", "2")]));
    }

    #[test]
    fn an_empty_chunk_between_cr_and_lf_does_not_make_a_blank_line() {
        let events = parse_in_pieces(&[b"event: a\r", b"", b"\ndata: 1\r\n\r\n"]);
        assert_eq!(events, owned(&[("a", "1")]));
    }

    #[test]
    fn comments_and_unknown_fields_are_ignored() {
        let events = parse_in_pieces(&[b": keep-alive\n\nid: 7\nretry: 10\ndata: x\n\n"]);
        assert_eq!(events, owned(&[("message", "x")]));
    }

    #[test]
    fn multi_line_data_is_joined_with_newlines() {
        let events = parse_in_pieces(&[b"data: a\ndata:b\ndata\n\n"]);
        assert_eq!(events, owned(&[("message", "a\nb\n")]));
    }

    #[test]
    fn an_event_split_inside_a_field_is_delivered_once_complete() {
        let events = parse_in_pieces(&[
            b"eve",
            b"nt: delta\nda",
            b"ta: {\"t\":",
            b"\"hi\"}\n",
            b"\n",
        ]);
        assert_eq!(events, owned(&[("delta", "{\"t\":\"hi\"}")]));
    }

    #[test]
    fn a_last_event_without_blank_line_is_delivered_at_finish() {
        let events = parse_in_pieces(&[b"data: last"]);
        assert_eq!(events, owned(&[("message", "last")]));
    }

    #[test]
    fn a_line_that_never_ends_stops_the_parser_at_the_cap() {
        let mut parser = SseParser::new();
        let mut events = 0;
        parser.push(b"data: 1\n\ndata: ", |_| events += 1);
        let piece = vec![b'x'; 64 * 1024];
        for _ in 0..(MAX_EVENT_BYTES / piece.len() + 1) {
            parser.push(&piece, |_| events += 1);
        }
        assert!(parser.overflowed());
        parser.push(b"\n\ndata: 2\n\n", |_| events += 1);
        parser.finish(|_| events += 1);
        assert_eq!(events, 1, "nothing after the overflow is delivered");
    }

    #[test]
    fn many_data_lines_of_one_event_count_towards_the_cap() {
        let mut parser = SseParser::new();
        let line = format!("data: {}\n", "y".repeat(1000));
        let mut delivered = false;
        for _ in 0..(MAX_EVENT_BYTES / 1000 + 2) {
            parser.push(line.as_bytes(), |_| delivered = true);
        }
        assert!(parser.overflowed());
        assert!(!delivered);
    }

    #[test]
    fn an_event_just_under_the_cap_is_delivered() {
        let mut parser = SseParser::new();
        let body = "z".repeat(MAX_EVENT_BYTES - 16);
        let mut sizes = Vec::new();
        parser.push(format!("data: {body}\n\n").as_bytes(), |e| {
            sizes.push(e.data.len())
        });
        assert_eq!(sizes, vec![body.len()]);
        assert!(!parser.overflowed());
    }

    #[test]
    fn a_blank_line_without_data_dispatches_nothing() {
        let events = parse_in_pieces(&[b"event: x\n\n\n\n"]);
        assert!(events.is_empty());
    }
}
