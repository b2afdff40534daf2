//! Header maps as Envoy keeps them (ordered, duplicates allowed, keys lower-cased) and the
//! proxy-wasm "pairs" serialization used for header maps and property maps.

/// An ordered header map with lower-case keys, as Envoy's `HeaderMap`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers {
    entries: Vec<(String, Vec<u8>)>,
}

impl Headers {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// A map from `(name, value)` pairs; names are lower-cased like Envoy's codecs do.
    pub fn from_pairs<K: AsRef<str>, V: AsRef<[u8]>>(pairs: &[(K, V)]) -> Self {
        let mut headers = Self::new();
        for (key, value) in pairs {
            headers.add(key.as_ref(), value.as_ref());
        }
        headers
    }

    /// The first value of `name` as UTF-8 (lossy), as `proxy_get_header_map_value` returns it.
    pub fn get(&self, name: &str) -> Option<String> {
        self.get_bytes(name)
            .map(|value| String::from_utf8_lossy(value).into_owned())
    }

    /// The first value of `name` as bytes.
    pub fn get_bytes(&self, name: &str) -> Option<&[u8]> {
        let name = name.to_ascii_lowercase();
        self.entries
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.as_slice())
    }

    /// Every value of `name`, in order.
    pub fn get_all(&self, name: &str) -> Vec<String> {
        let name = name.to_ascii_lowercase();
        self.entries
            .iter()
            .filter(|(key, _)| *key == name)
            .map(|(_, value)| String::from_utf8_lossy(value).into_owned())
            .collect()
    }

    /// Adds one more entry (Envoy `addCopy`).
    pub fn add(&mut self, name: &str, value: &[u8]) {
        self.entries
            .push((name.to_ascii_lowercase(), value.to_vec()));
    }

    /// Replaces every value of `name` with one, in the place of the first (Envoy `setCopy`).
    pub fn set(&mut self, name: &str, value: &[u8]) {
        let name = name.to_ascii_lowercase();
        match self.entries.iter().position(|(key, _)| *key == name) {
            Some(first) => {
                self.entries[first].1 = value.to_vec();
                let mut index = 0;
                self.entries.retain(|(key, _)| {
                    index += 1;
                    index - 1 == first || *key != name
                });
            }
            None => self.entries.push((name, value.to_vec())),
        }
    }

    /// Removes every value of `name`.
    pub fn remove(&mut self, name: &str) {
        let name = name.to_ascii_lowercase();
        self.entries.retain(|(key, _)| *key != name);
    }

    /// The number of entries (what Envoy passes as `num_headers`).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the map has no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Total key + value bytes: what Envoy's `proxy_get_header_map_size` returns.
    pub fn byte_size(&self) -> usize {
        self.entries.iter().map(|(k, v)| k.len() + v.len()).sum()
    }

    /// The entries in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_slice()))
    }

    /// The pairs serialization of this map (empty map: empty bytes, as Envoy emits).
    pub(crate) fn serialize(&self) -> Vec<u8> {
        serialize_pairs(
            self.entries
                .iter()
                .map(|(k, v)| (k.as_bytes(), v.as_slice())),
        )
    }

    /// Parses a pairs buffer with Envoy's leniency: anything malformed is an empty map.
    pub(crate) fn deserialize(bytes: &[u8]) -> Self {
        let mut headers = Self::new();
        for (key, value) in parse_pairs(bytes).unwrap_or_default() {
            headers.add(&String::from_utf8_lossy(&key), &value);
        }
        headers
    }
}

/// Envoy's limits when parsing pairs from a module (`limits.h`).
const MAX_PAIRS_BYTES: usize = 1 << 20;
const MAX_PAIRS: usize = 1024;

/// `u32 N, N × (u32 key_len, u32 value_len), N × (key, 0, value, 0)`; empty input gives empty output.
pub(crate) fn serialize_pairs<'a>(
    pairs: impl Iterator<Item = (&'a [u8], &'a [u8])> + Clone,
) -> Vec<u8> {
    let count = pairs.clone().count();
    if count == 0 {
        return Vec::new();
    }
    let mut out = Vec::new();
    out.extend_from_slice(&(count as u32).to_le_bytes());
    for (key, value) in pairs.clone() {
        out.extend_from_slice(&(key.len() as u32).to_le_bytes());
        out.extend_from_slice(&(value.len() as u32).to_le_bytes());
    }
    for (key, value) in pairs {
        out.extend_from_slice(key);
        out.push(0);
        out.extend_from_slice(value);
        out.push(0);
    }
    out
}

/// Parses the pairs format; `None` when malformed or over Envoy's limits.
pub(crate) fn parse_pairs(bytes: &[u8]) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
    if bytes.len() > MAX_PAIRS_BYTES || bytes.len() < 4 {
        return None;
    }
    let read_u32 = |at: usize| -> Option<usize> {
        let slice = bytes.get(at..at + 4)?;
        Some(u32::from_le_bytes(slice.try_into().ok()?) as usize)
    };
    let count = read_u32(0)?;
    if count > MAX_PAIRS {
        return None;
    }
    let mut sizes = Vec::with_capacity(count);
    for index in 0..count {
        sizes.push((read_u32(4 + index * 8)?, read_u32(8 + index * 8)?));
    }
    let mut at = 4 + count * 8;
    let mut pairs = Vec::with_capacity(count);
    for (key_len, value_len) in sizes {
        let key = bytes.get(at..at + key_len)?.to_vec();
        at += key_len + 1;
        let value = bytes.get(at..at + value_len)?.to_vec();
        at += value_len + 1;
        if at > bytes.len() {
            return None;
        }
        pairs.push((key, value));
    }
    Some(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_serialization_matches_the_documented_example() {
        let headers = Headers::from_pairs(&[("a", "1"), ("b", "22")]);
        let expected: Vec<u8> = vec![
            2, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, b'a', 0, b'1', 0, b'b', 0,
            b'2', b'2', 0,
        ];
        assert_eq!(headers.serialize(), expected);
        assert_eq!(Headers::deserialize(&expected), headers);
    }

    #[test]
    fn malformed_pairs_parse_as_an_empty_map() {
        assert!(Headers::deserialize(&[5, 0, 0, 0, 1]).is_empty());
    }

    #[test]
    fn set_replaces_every_value_in_place_of_the_first() {
        let mut headers = Headers::from_pairs(&[("X-A", "1"), ("b", "2"), ("x-a", "3")]);
        headers.set("x-a", b"9");
        assert_eq!(headers.get_all("x-a"), vec!["9"]);
        assert_eq!(headers.iter().next().map(|(k, _)| k), Some("x-a"));
    }
}
