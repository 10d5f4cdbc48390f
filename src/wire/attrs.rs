//! Custom request attributes (`context.attributes`): the caller's own facts about the page or the app
//! (`page_type`, `cart_value`), read by rules as `attributes.NAME`.
//!
//! Why not `serde_json::Map`: a map of two attributes cost four allocations there (the tree node, each
//! key, each string value) out of the ~19 of a whole end-to-end decision; here keys and string values
//! are [`Text`] (inline up to 24 bytes) in one sorted vector. The JSON is the same: keys serialize in
//! byte order, as `serde_json::Map` (a `BTreeMap`) writes them, and a repeated key keeps its last value,
//! as the map does.

use super::Text;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One attribute value. Scalars are held directly; arrays and objects (which no declared attribute
/// type reads, but a caller may send) as JSON.
#[derive(Clone, Debug, PartialEq)]
pub enum Attr {
    /// `null`: the attribute is missing, as if absent.
    Null,
    /// `true` / `false`
    Bool(bool),
    /// A number, exactly as serde_json reads it.
    Number(serde_json::Number),
    /// A string.
    String(Text),
    /// An array or an object.
    Json(serde_json::Value),
}

impl Attr {
    /// This value as a JSON value.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Attr::Null => serde_json::Value::Null,
            Attr::Bool(b) => serde_json::Value::Bool(*b),
            Attr::Number(n) => serde_json::Value::Number(n.clone()),
            Attr::String(s) => serde_json::Value::String(s.to_string()),
            Attr::Json(v) => v.clone(),
        }
    }
}

impl From<serde_json::Value> for Attr {
    fn from(v: serde_json::Value) -> Attr {
        match v {
            serde_json::Value::Null => Attr::Null,
            serde_json::Value::Bool(b) => Attr::Bool(b),
            serde_json::Value::Number(n) => Attr::Number(n),
            serde_json::Value::String(s) => Attr::String(Text::from(s)),
            other => Attr::Json(other),
        }
    }
}

impl From<&str> for Attr {
    fn from(s: &str) -> Attr {
        Attr::String(Text::from(s))
    }
}

impl From<bool> for Attr {
    fn from(b: bool) -> Attr {
        Attr::Bool(b)
    }
}

impl From<f64> for Attr {
    /// A finite number; NaN and infinities (which JSON cannot hold) become `null`.
    fn from(n: f64) -> Attr {
        serde_json::Number::from_f64(n).map_or(Attr::Null, Attr::Number)
    }
}

impl Serialize for Attr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Attr::Null => s.serialize_unit(),
            Attr::Bool(b) => s.serialize_bool(*b),
            Attr::Number(n) => n.serialize(s),
            Attr::String(t) => s.serialize_str(t),
            Attr::Json(v) => v.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Attr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Attr, D::Error> {
        serde_json::Value::deserialize(d).map(Attr::from)
    }
}

/// Attributes by name: sorted by key (byte order), each key once.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Attributes {
    entries: Vec<(Text, Attr)>,
}

impl Attributes {
    /// No attributes.
    pub const fn new() -> Attributes {
        Attributes {
            entries: Vec::new(),
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The value of `name`.
    pub fn get(&self, name: &str) -> Option<&Attr> {
        // Requests carry a handful of attributes: a linear scan.
        self.entries
            .iter()
            .find(|(k, _)| k.as_str() == name)
            .map(|(_, v)| v)
    }

    /// Set `name` to `value`, replacing an earlier value (the last one written wins, as in a JSON
    /// object read by serde_json).
    pub fn insert(&mut self, name: impl Into<Text>, value: impl Into<Attr>) {
        let (name, value) = (name.into(), value.into());
        // Writers usually send keys in order: check the end first.
        match self.entries.last() {
            Some((k, _)) if k.as_str() < name.as_str() => self.entries.push((name, value)),
            None => self.entries.push((name, value)),
            Some(_) => match self
                .entries
                .binary_search_by(|(k, _)| k.as_str().cmp(name.as_str()))
            {
                Ok(i) => {
                    if let Some(e) = self.entries.get_mut(i) {
                        e.1 = value;
                    }
                }
                Err(i) => self.entries.insert(i, (name, value)),
            },
        }
    }

    /// The attributes in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Attr)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }
}

impl<K: Into<Text>, V: Into<Attr>> FromIterator<(K, V)> for Attributes {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(it: I) -> Attributes {
        let mut a = Attributes::new();
        for (k, v) in it {
            a.insert(k, v);
        }
        a
    }
}

impl From<serde_json::Map<String, serde_json::Value>> for Attributes {
    fn from(m: serde_json::Map<String, serde_json::Value>) -> Attributes {
        m.into_iter().collect()
    }
}

impl Serialize for Attributes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.entries.iter().map(|(k, v)| (k.as_str(), v)))
    }
}

impl<'de> Deserialize<'de> for Attributes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Attributes, D::Error> {
        // serde_json's map decides what a valid object is (and that the last of repeated keys wins).
        serde_json::Map::<String, serde_json::Value>::deserialize(d).map(Attributes::from)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn sorted_last_wins_and_serializes_like_a_json_map() {
        let text = r#"{"z":1,"a":"x","m":[1,{"k":null}],"a":true,"b":null,"c":-0.5}"#;
        let ours: Attributes = serde_json::from_str(text).unwrap();
        let map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(text).unwrap();
        assert_eq!(
            serde_json::to_string(&ours).unwrap(),
            serde_json::to_string(&map).unwrap()
        );
        assert_eq!(ours.get("a"), Some(&Attr::Bool(true)));
        assert_eq!(ours.get("b"), Some(&Attr::Null));
        assert_eq!(ours.get("q"), None);
        assert_eq!(ours.len(), 5);
        let keys: Vec<&str> = ours.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["a", "b", "c", "m", "z"]);
        // Built out of order, key by key: the same.
        let mut built = Attributes::new();
        for (k, v) in [("z", 1.0), ("c", -0.5), ("a", 2.0)] {
            built.insert(k, v);
        }
        built.insert("a", true);
        built.insert("b", Attr::Null);
        built.insert("m", Attr::Json(serde_json::json!([1, {"k": null}])));
        assert_eq!(
            serde_json::to_string(&built).unwrap(),
            r#"{"a":true,"b":null,"c":-0.5,"m":[1,{"k":null}],"z":1.0}"#
        );
        assert_eq!(Attr::from(f64::NAN), Attr::Null);
    }
}
