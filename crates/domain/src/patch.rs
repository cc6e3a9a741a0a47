//! A field in a partial update: absent (leave alone), null (clear) or a value.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Patch<T> {
    #[default]
    Absent,
    Null,
    Value(T),
}

impl<T> Patch<T> {
    pub fn is_absent(&self) -> bool {
        matches!(self, Patch::Absent)
    }

    /// Applies the patch to an optional current value.
    pub fn apply_to(self, current: Option<T>) -> Option<T> {
        match self {
            Patch::Absent => current,
            Patch::Null => None,
            Patch::Value(v) => Some(v),
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Patch<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Only called when the field is present; `#[serde(default)]` gives Absent.
        Ok(match Option::<T>::deserialize(deserializer)? {
            Some(v) => Patch::Value(v),
            None => Patch::Null,
        })
    }
}

impl<T: Serialize> Serialize for Patch<T> {
    /// `Null` and `Value` as JSON; an absent field is left out with
    /// `#[serde(skip_serializing_if = "Patch::is_absent")]`, so a patch
    /// serialised and read back is the same patch.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Patch::Absent | Patch::Null => serializer.serialize_none(),
            Patch::Value(v) => serializer.serialize_some(v),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Body {
        #[serde(default, skip_serializing_if = "Patch::is_absent")]
        owner: Patch<String>,
    }

    #[test]
    fn absent_null_and_value_are_told_apart() {
        let absent: Body = serde_json::from_str("{}").expect("valid json");
        let null: Body = serde_json::from_str(r#"{"owner":null}"#).expect("valid json");
        let value: Body = serde_json::from_str(r#"{"owner":"a"}"#).expect("valid json");
        assert_eq!(absent.owner, Patch::Absent);
        assert_eq!(null.owner, Patch::Null);
        assert_eq!(value.owner, Patch::Value("a".to_owned()));
        assert_eq!(Patch::Absent.apply_to(Some(1)), Some(1));
        assert_eq!(Patch::<i32>::Null.apply_to(Some(1)), None);
        assert_eq!(Patch::Value(2).apply_to(Some(1)), Some(2));
    }

    #[test]
    fn a_patch_serialises_back_to_what_was_read() {
        for json in ["{}", r#"{"owner":null}"#, r#"{"owner":"a"}"#] {
            let body: Body = serde_json::from_str(json).expect("valid json");
            assert_eq!(serde_json::to_string(&body).expect("serialises"), json);
        }
    }
}
