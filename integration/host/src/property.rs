//! The attribute tree behind `proxy_get_property`, serialized exactly as Envoy does:
//! strings and bytes raw, integers and doubles as 8 bytes little-endian, booleans as one byte,
//! maps (and lists) in the pairs encoding with nested values serialized recursively.

use crate::headers::serialize_pairs;

/// One attribute value. Build trees with [`Value::map`] or [`Value::from_json`].
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Value {
    /// A CEL string: returned raw.
    String(String),
    /// CEL bytes: returned raw.
    Bytes(Vec<u8>),
    /// int64 (e.g. `source.port`, `response.code`): 8 bytes LE.
    Int(i64),
    /// uint64 (e.g. `connection.id`): 8 bytes LE.
    Uint(u64),
    /// double, and every number inside a `google.protobuf.Struct` (metadata): 8 bytes IEEE LE.
    Double(f64),
    /// bool: one byte.
    Bool(bool),
    /// A timestamp in nanoseconds since the epoch: 8 bytes LE.
    Timestamp(i64),
    /// A duration in nanoseconds: 8 bytes LE.
    Duration(i64),
    /// A map (Struct, proto map, header map): pairs of key and serialized value.
    Map(Vec<(String, Value)>),
    /// A list: pairs with each serialized element as the key and an empty value.
    List(Vec<Value>),
    /// `null`: Envoy answers SERIALIZATION_FAILURE (the Rust SDK then panics).
    #[default]
    Null,
}

impl Value {
    /// A map from `(key, value)` pairs.
    pub fn map<K: Into<String>>(entries: impl IntoIterator<Item = (K, Value)>) -> Self {
        Value::Map(entries.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    /// A `google.protobuf.Struct` as Envoy holds metadata: JSON numbers become doubles.
    pub fn from_json(json: &str) -> Result<Self, serde_json::Error> {
        let parsed: serde_json::Value = serde_json::from_str(json)?;
        Ok(Self::from_json_value(&parsed))
    }

    fn from_json_value(json: &serde_json::Value) -> Self {
        match json {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => Value::Double(n.as_f64().unwrap_or(f64::NAN)),
            serde_json::Value::String(s) => Value::String(s.clone()),
            serde_json::Value::Array(items) => {
                Value::List(items.iter().map(Self::from_json_value).collect())
            }
            serde_json::Value::Object(fields) => Value::Map(
                fields
                    .iter()
                    .map(|(k, v)| (k.clone(), Self::from_json_value(v)))
                    .collect(),
            ),
        }
    }

    /// The bytes `proxy_get_property` returns; `None` for a value Envoy cannot serialize.
    pub fn serialize(&self) -> Option<Vec<u8>> {
        Some(match self {
            Value::String(s) => s.as_bytes().to_vec(),
            Value::Bytes(b) => b.clone(),
            Value::Int(i) | Value::Timestamp(i) | Value::Duration(i) => i.to_le_bytes().to_vec(),
            Value::Uint(u) => u.to_le_bytes().to_vec(),
            Value::Double(d) => d.to_le_bytes().to_vec(),
            Value::Bool(b) => vec![u8::from(*b)],
            Value::Map(entries) => {
                let serialized: Vec<(Vec<u8>, Vec<u8>)> = entries
                    .iter()
                    .map(|(k, v)| Some((k.as_bytes().to_vec(), v.serialize()?)))
                    .collect::<Option<_>>()?;
                serialize_pairs(serialized.iter().map(|(k, v)| (k.as_slice(), v.as_slice())))
            }
            Value::List(items) => {
                let serialized: Vec<Vec<u8>> =
                    items.iter().map(Value::serialize).collect::<Option<_>>()?;
                serialize_pairs(serialized.iter().map(|k| (k.as_slice(), &[][..])))
            }
            Value::Null => return None,
        })
    }

    /// The value at `path` below this one: maps by key, lists by decimal index.
    pub(crate) fn lookup(&self, path: &[&str]) -> Option<&Value> {
        let Some((first, rest)) = path.split_first() else {
            return Some(self);
        };
        let child = match self {
            Value::Map(entries) => entries.iter().find(|(k, _)| k == first).map(|(_, v)| v),
            Value::List(items) => first.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        }?;
        child.lookup(rest)
    }

    /// Sets `path` below this map, creating intermediate maps; a non-map on the way is replaced.
    pub(crate) fn insert(&mut self, path: &[&str], value: Value) {
        let Some((first, rest)) = path.split_first() else {
            *self = value;
            return;
        };
        if !matches!(self, Value::Map(_)) {
            *self = Value::Map(Vec::new());
        }
        if let Value::Map(entries) = self {
            let index = match entries.iter().position(|(k, _)| k == first) {
                Some(index) => index,
                None => {
                    entries.push((first.to_string(), Value::Map(Vec::new())));
                    entries.len() - 1
                }
            };
            entries[index].1.insert(rest, value);
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::String(s.to_string())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::String(s)
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn struct_numbers_serialize_as_little_endian_doubles() {
        let claims = Value::from_json(r#"{"sub":"alice","tier":2}"#).unwrap();
        assert_eq!(
            claims.lookup(&["sub"]).unwrap().serialize().unwrap(),
            b"alice"
        );
        assert_eq!(
            claims.lookup(&["tier"]).unwrap().serialize().unwrap(),
            2.0f64.to_le_bytes()
        );
    }

    #[test]
    fn a_nested_map_serializes_as_pairs_of_serialized_values() {
        let value = Value::map([("k", Value::Int(1))]);
        let bytes = value.serialize().unwrap();
        let pairs = crate::headers::parse_pairs(&bytes).unwrap();
        assert_eq!(pairs, vec![(b"k".to_vec(), 1i64.to_le_bytes().to_vec())]);
    }

    #[test]
    fn null_cannot_be_serialized() {
        assert_eq!(Value::Null.serialize(), None);
        assert_eq!(Value::map([("a", Value::Null)]).serialize(), None);
    }
}
