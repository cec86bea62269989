//! The generated schema as static data (see `build.rs`), walked by the loader with no
//! start-up cost.

/// A JSON value laid out at compile time.
#[derive(Debug, PartialEq)]
pub(crate) enum Json {
    /// No schema uses `null` today, but build.rs can emit it.
    #[allow(dead_code)]
    Null,
    Bool(bool),
    Num(f64),
    Str(&'static str),
    Arr(&'static [Json]),
    Obj(&'static [(&'static str, Json)]),
}

include!(concat!(env!("OUT_DIR"), "/schema_table.rs"));

impl Json {
    /// The member `key` of an object.
    pub fn get(&self, key: &str) -> Option<&Json> {
        self.as_object()?
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
    }

    pub fn as_str(&self) -> Option<&'static str> {
        match self {
            Json::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&'static [Json]> {
        match self {
            Json::Arr(a) => Some(a),
            _ => None,
        }
    }

    pub fn as_object(&self) -> Option<&'static [(&'static str, Json)]> {
        match self {
            Json::Obj(o) => Some(o),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Json::Num(n) => Some(*n),
            _ => None,
        }
    }

    /// Converts to a `serde_json::Value` (integers stay integers).
    #[cfg(test)]
    pub fn to_value(&self) -> serde_json::Value {
        use serde_json::Value;
        match self {
            Json::Null => Value::Null,
            Json::Bool(b) => Value::Bool(*b),
            Json::Num(n) if n.fract() == 0.0 && *n >= 0.0 => Value::from(*n as u64),
            Json::Num(n) if n.fract() == 0.0 => Value::from(*n as i64),
            Json::Num(n) => Value::from(*n),
            Json::Str(s) => Value::from(*s),
            Json::Arr(a) => Value::Array(a.iter().map(Json::to_value).collect()),
            Json::Obj(o) => Value::Object(
                o.iter()
                    .map(|(k, v)| (k.to_string(), v.to_value()))
                    .collect(),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_static_table_is_the_generated_schema() {
        let mut generated = crate::schema::schema();
        if let Some(obj) = generated.as_object_mut() {
            obj.insert("title".into(), serde_json::Value::from("Spec"));
        }
        assert_eq!(SCHEMA.to_value(), generated);
    }
}
