//! A header map read from the host in one call (Envoy: one `proxy_get_header_map_pairs`
//! instead of one crossing per name, each ~1 µs), kept as the host serialized it: names and
//! values are slices of that one buffer, so reading a map costs two allocations whatever its
//! size, and dropping it two frees.

/// The headers of one direction, in arrival order. Names are lower case as Envoy gives them; a
/// repeated header keeps every value, and [`Headers::get`] gives the first, as
/// `proxy_get_header_map_value` does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers {
    /// The serialized map as it came from the host.
    bytes: Vec<u8>,
    /// Per entry: name start, name end, value start, value end (offsets into `bytes`).
    entries: Vec<[u32; 4]>,
}

impl Headers {
    /// Decodes proxy-wasm's serialized map: a u32 count, then a (name length, value length) u32
    /// pair per entry, then each name and value followed by a NUL (little endian). A truncated
    /// or inconsistent map keeps the entries read before the fault; a non-UTF-8 name is
    /// skipped. Never panics.
    pub fn from_serialized(bytes: Vec<u8>) -> Self {
        let word = |at: usize| {
            bytes
                .get(at..at.saturating_add(4))
                .and_then(|w| w.try_into().ok())
                .map(|w| u32::from_le_bytes(w) as usize)
        };
        let mut entries = Vec::new();
        // Offsets are kept as u32: a map past 4 GiB (never, in Envoy) keeps what fits.
        if let (Some(count), true) = (word(0), u32::try_from(bytes.len()).is_ok()) {
            entries.reserve(count.min(64));
            let mut data = count.saturating_mul(8).saturating_add(4);
            for i in 0..count {
                let (Some(name_len), Some(value_len)) =
                    (word(4 + i * 8), word(8usize.saturating_add(i * 8)))
                else {
                    break;
                };
                let name_end = data.saturating_add(name_len);
                let value_start = name_end.saturating_add(1);
                let value_end = value_start.saturating_add(value_len);
                let (Some(name), true) = (bytes.get(data..name_end), value_end <= bytes.len())
                else {
                    break;
                };
                if std::str::from_utf8(name).is_ok() {
                    // Every offset is ≤ bytes.len(), which fits in u32 (checked above).
                    let span = [data, name_end, value_start, value_end].map(|o| o as u32);
                    entries.push(span);
                }
                data = value_end.saturating_add(1);
            }
        }
        Self { bytes, entries }
    }

    /// A map of these entries (tests, and hosts that hand pairs).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> Self {
        let pairs: Vec<_> = pairs.into_iter().collect();
        let mut out = (pairs.len() as u32).to_le_bytes().to_vec();
        for (name, value) in &pairs {
            out.extend((name.len() as u32).to_le_bytes());
            out.extend((value.len() as u32).to_le_bytes());
        }
        for (name, value) in &pairs {
            out.extend(name.as_bytes());
            out.push(0);
            out.extend(*value);
            out.push(0);
        }
        Self::from_serialized(out)
    }

    /// How many entries (repeats counted).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every (name, value), in arrival order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.entries.iter().map(|span| self.entry(span))
    }

    /// The first value of `name` (any case: a configured name may be written `X-Tenant`).
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// The first value of `name` as text, when it is UTF-8.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// Whether `name` is present.
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    fn entry(&self, span: &[u32; 4]) -> (&str, &[u8]) {
        let [name_start, name_end, value_start, value_end] = span.map(|o| o as usize);
        let name = self
            .bytes
            .get(name_start..name_end)
            .and_then(|n| std::str::from_utf8(n).ok())
            .unwrap_or_default();
        let value = self.bytes.get(value_start..value_end).unwrap_or_default();
        (name, value)
    }
}

#[cfg(test)]
mod tests {
    use super::Headers;

    #[test]
    fn a_serialized_map_decodes_in_order_with_repeats_and_binary_values() {
        let headers = Headers::from_pairs([
            (":path", &b"/v1/chat/completions"[..]),
            ("x-a", b"1"),
            ("x-a", b"2"),
            ("x-bin", &[0xff, 0x00, 0x01]),
            ("empty", b""),
        ]);
        assert_eq!(headers.len(), 5);
        assert_eq!(headers.text(":path"), Some("/v1/chat/completions"));
        assert_eq!(
            headers.get("X-A"),
            Some(&b"1"[..]),
            "the first of a repeated header, any case"
        );
        assert_eq!(headers.get("x-bin"), Some(&[0xff, 0x00, 0x01][..]));
        assert_eq!(headers.text("x-bin"), None, "not UTF-8");
        assert_eq!(headers.get("empty"), Some(&b""[..]));
        assert!(!headers.contains("absent"));
        let names: Vec<&str> = headers.iter().map(|(n, _)| n).collect();
        assert_eq!(names, [":path", "x-a", "x-a", "x-bin", "empty"]);
    }

    #[test]
    fn a_truncated_or_lying_map_keeps_what_was_whole_and_never_panics() {
        let whole = Headers::from_pairs([("a", &b"1"[..]), ("b", b"22")]).bytes;
        for cut in 0..whole.len() {
            let _ = Headers::from_serialized(whole[..cut].to_vec());
        }
        // Only the last value is cut short: the first entry survives.
        assert_eq!(
            Headers::from_serialized(whole[..whole.len() - 2].to_vec()).len(),
            1
        );
        let mut lying = whole.clone();
        lying[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(Headers::from_serialized(lying).is_empty());
        assert!(Headers::from_serialized(Vec::new()).is_empty());
        let mut long_name = whole.clone();
        long_name[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(Headers::from_serialized(long_name).is_empty());
    }

    #[test]
    fn a_name_that_is_not_utf8_is_skipped_and_the_rest_kept() {
        let mut bytes = Headers::from_pairs([("ab", &b"1"[..]), ("c", b"2")]).bytes;
        let at = 4 + 2 * 8; // the first name's bytes
        bytes[at] = 0xff;
        let headers = Headers::from_serialized(bytes);
        assert_eq!(headers.len(), 1);
        assert_eq!(headers.get("c"), Some(&b"2"[..]));
    }
}
