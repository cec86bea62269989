//! A serde `Deserializer` over the positioned tree.
//!
//! The typed [`Spec`](crate::Spec) (and each quantity checked on its own) is read
//! straight from the tree, without building an intermediate `serde_json::Value`: that
//! halves the time a load takes. An error records the key path it came from, so even
//! a problem only serde notices is reported at its position.

use std::fmt;

use serde::de::value::BorrowedStrDeserializer;
use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};
use serde::forward_to_deserialize_any;

use crate::yaml::{Entry, Kind, Node, ScalarValue};

/// A deserialisation error and the path (innermost step first) where it happened.
#[derive(Debug)]
pub(crate) struct Error {
    pub message: String,
    /// Steps from the failing node up to the root: keys and indices.
    pub reversed_path: Vec<Step>,
}

/// One step of an error's path.
#[derive(Debug, Clone)]
pub(crate) enum Step {
    Key(String),
    Index(usize),
}

impl Error {
    fn at(mut self, step: Step) -> Error {
        self.reversed_path.push(step);
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl de::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Error {
        Error {
            message: msg.to_string(),
            reversed_path: Vec::new(),
        }
    }
}

/// Deserialises from one node of the tree.
#[derive(Clone, Copy)]
pub(crate) struct NodeDe<'a>(pub &'a Node);

impl<'de> de::Deserializer<'de> for NodeDe<'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match &self.0.kind {
            Kind::Scalar(s) => match s.value {
                ScalarValue::Null => visitor.visit_unit(),
                ScalarValue::Bool(b) => visitor.visit_bool(b),
                ScalarValue::Int(i) => visitor.visit_i64(i),
                ScalarValue::UInt(u) => visitor.visit_u64(u),
                ScalarValue::Float(f) => visitor.visit_f64(f),
                ScalarValue::Str => visitor.visit_borrowed_str(&s.text),
            },
            Kind::Seq(items) => visitor.visit_seq(Seq {
                items: items.iter(),
                index: 0,
            }),
            Kind::Map(entries) => visitor.visit_map(Map {
                entries: entries.iter(),
                value: None,
            }),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        if self.0.is_null() {
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.0.as_str() {
            // Unit variants, written as their name.
            Some(s) => visitor.visit_enum(BorrowedStrDeserializer::new(s)),
            None => self.deserialize_any(visitor),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map struct
        identifier ignored_any
    }
}

impl<'de> IntoDeserializer<'de, Error> for NodeDe<'de> {
    type Deserializer = Self;
    fn into_deserializer(self) -> Self {
        self
    }
}

struct Seq<'a> {
    items: std::slice::Iter<'a, Node>,
    index: usize,
}

impl<'de> de::SeqAccess<'de> for Seq<'de> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        let Some(n) = self.items.next() else {
            return Ok(None);
        };
        let index = self.index;
        self.index += 1;
        seed.deserialize(NodeDe(n))
            .map(Some)
            .map_err(|e| e.at(Step::Index(index)))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

struct Map<'a> {
    entries: std::slice::Iter<'a, Entry>,
    value: Option<&'a Entry>,
}

impl<'de> de::MapAccess<'de> for Map<'de> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        match self.entries.next() {
            Some(e) => {
                self.value = Some(e);
                seed.deserialize(BorrowedStrDeserializer::<Error>::new(&e.key))
                    .map(Some)
                    .map_err(|err| err.at(Step::Key(e.key.clone())))
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        match self.value.take() {
            Some(e) => seed
                .deserialize(NodeDe(&e.value))
                .map_err(|err| err.at(Step::Key(e.key.clone()))),
            None => Err(de::Error::custom("a value was read before its key")),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}
