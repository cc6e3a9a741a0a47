//! A field in a partial update: absent (leave alone), null (clear) or a value.

use serde::{Deserialize, Deserializer};

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

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Body {
        #[serde(default)]
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
}
