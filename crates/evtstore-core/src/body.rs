//! Event bodies: JSON that every provider stores the same way, checked when encoding and
//! again at append time, so bad input is refused before it is stored, never after.

use serde::Serialize;
use serde::ser::{self, Error as _};

/// Serialises an event body, refusing a float that is NaN or infinite (JSON has no such
/// number: `serde_json` would write `null`, and the event would never decode again).
///
/// ```
/// let error = evtstore_core::provider::encode_body(&[1.0, f64::NAN]).unwrap_err();
/// assert!(error.to_string().contains("NaN or infinite"));
/// assert_eq!(evtstore_core::provider::encode_body(&Some(1.5)).unwrap(), "1.5");
/// ```
pub fn encode<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<String> {
    let data = serde_json::to_string(value)?;
    // A non-finite float is written as `null`: only then is the value walked again.
    if data.contains("null") {
        value.serialize(FiniteFloats)?;
    }
    Ok(data)
}

/// Why a body cannot be stored, if it cannot: it must be JSON, without a NUL character
/// (PostgreSQL refuses `\u0000` in JSON text, so no provider stores it).
pub fn check(data: &str) -> Result<(), &'static str> {
    if serde_json::from_str::<serde::de::IgnoredAny>(data).is_err() {
        return Err("the body is not JSON");
    }
    if has_nul_escape(data) {
        return Err("the body holds a NUL character (\\u0000), which cannot be stored");
    }
    Ok(())
}

/// True when the JSON text escapes a NUL: `\u0000` after an odd run of backslashes.
fn has_nul_escape(data: &str) -> bool {
    data.match_indices("u0000").any(|(at, _)| {
        let slashes = data[..at].bytes().rev().take_while(|&b| b == b'\\').count();
        slashes % 2 == 1
    })
}

/// A serializer that only looks at floats, failing on a NaN or an infinity.
#[derive(Clone, Copy)]
struct FiniteFloats;

type Res = serde_json::Result<()>;

fn float(value: f64) -> Res {
    if value.is_finite() {
        return Ok(());
    }
    Err(serde_json::Error::custom(format!(
        "a float that is NaN or infinite ({value}) cannot be stored in JSON"
    )))
}

macro_rules! ignore {
    ($($method:ident($($t:ty),*)),* $(,)?) => {
        $(fn $method(self, $(_: $t),*) -> Res { Ok(()) })*
    };
}

impl ser::Serializer for FiniteFloats {
    type Ok = ();
    type Error = serde_json::Error;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Self;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    ignore!(
        serialize_bool(bool),
        serialize_i8(i8),
        serialize_i16(i16),
        serialize_i32(i32),
        serialize_i64(i64),
        serialize_i128(i128),
        serialize_u8(u8),
        serialize_u16(u16),
        serialize_u32(u32),
        serialize_u64(u64),
        serialize_u128(u128),
        serialize_char(char),
        serialize_str(&str),
        serialize_bytes(&[u8]),
        serialize_none(),
        serialize_unit(),
        serialize_unit_struct(&'static str),
        serialize_unit_variant(&'static str, u32, &'static str),
    );

    fn serialize_f32(self, value: f32) -> Res {
        float(value.into())
    }
    fn serialize_f64(self, value: f64) -> Res {
        float(value)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Res {
        value.serialize(self)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, v: &T) -> Res {
        v.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        value: &T,
    ) -> Res {
        value.serialize(self)
    }
    fn serialize_seq(self, _: Option<usize>) -> serde_json::Result<Self> {
        Ok(self)
    }
    fn serialize_tuple(self, _: usize) -> serde_json::Result<Self> {
        Ok(self)
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> serde_json::Result<Self> {
        Ok(self)
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> serde_json::Result<Self> {
        Ok(self)
    }
    fn serialize_map(self, _: Option<usize>) -> serde_json::Result<Self> {
        Ok(self)
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> serde_json::Result<Self> {
        Ok(self)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> serde_json::Result<Self> {
        Ok(self)
    }
}

/// Every compound part: each element is checked in turn.
macro_rules! compound {
    ($($trait:ident :: $method:ident($($name:ident),*)),* $(,)?) => {$(
        impl ser::$trait for FiniteFloats {
            type Ok = ();
            type Error = serde_json::Error;
            fn $method<T: Serialize + ?Sized>(&mut self, $($name: &'static str,)* value: &T) -> Res {
                value.serialize(*self)
            }
            fn end(self) -> Res {
                Ok(())
            }
        }
    )*};
}

compound!(
    SerializeSeq::serialize_element(),
    SerializeTuple::serialize_element(),
    SerializeTupleStruct::serialize_field(),
    SerializeTupleVariant::serialize_field(),
    SerializeStruct::serialize_field(_key),
    SerializeStructVariant::serialize_field(_key),
);

impl ser::SerializeMap for FiniteFloats {
    type Ok = ();
    type Error = serde_json::Error;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Res {
        key.serialize(*self)
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Res {
        value.serialize(*self)
    }
    fn end(self) -> Res {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_non_finite_floats_wherever_they_are() {
        #[derive(Serialize)]
        struct Reading {
            label: Option<String>,
            values: Vec<(String, f32)>,
        }
        let bad = Reading {
            label: None,
            values: vec![("x".into(), f32::INFINITY)],
        };
        assert!(encode(&bad).is_err());
        let good = Reading {
            label: None,
            values: vec![("x".into(), 2.5)],
        };
        assert_eq!(
            encode(&good).unwrap(),
            r#"{"label":null,"values":[["x",2.5]]}"#
        );
    }

    #[test]
    fn checks_bodies_as_every_provider_stores_them() {
        assert!(check(r#"{"type":"a","n":1}"#).is_ok());
        assert!(
            check(r#"{"a":"back\\u0000slash"}"#).is_ok(),
            "an escaped backslash"
        );
        assert!(check(r#"{"a":"x\u0000"}"#).is_err());
        assert!(check(r#"{"a":"x\\\u0000"}"#).is_err());
        assert!(check("not json").is_err());
        assert!(check(r#"{"a":1"#).is_err());
    }
}
