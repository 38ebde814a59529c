//! How typed values become bytes.

use crate::BoxError;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Turns values into bytes and back. [`Json`] is the default; [`Postcard`] is compact binary.
pub trait Codec: Send + Sync + 'static {
    /// A short name for error messages.
    fn name(&self) -> &'static str;

    /// Encodes `value`.
    ///
    /// # Errors
    /// When the value cannot be represented (a map with non-string keys in JSON, say).
    fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<Vec<u8>, BoxError>;

    /// Decodes bytes written by [`encode`](Self::encode).
    ///
    /// # Errors
    /// When the bytes are not a valid `T`.
    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, BoxError>;
}

/// JSON via `serde_json`: readable in `redis-cli`, and what other languages can read.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json;

impl Codec for Json {
    fn name(&self) -> &'static str {
        "json"
    }
    fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<Vec<u8>, BoxError> {
        Ok(serde_json::to_vec(value)?)
    }
    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, BoxError> {
        Ok(serde_json::from_slice(bytes)?)
    }
}

/// Compact binary via `postcard`: smaller than JSON (a test checks it), readable only by
/// serde/postcard.
/// Not self-describing: change a type's fields and old entries fail to decode (bump the cache
/// version).
#[derive(Debug, Clone, Copy, Default)]
pub struct Postcard;

impl Codec for Postcard {
    fn name(&self) -> &'static str {
        "postcard"
    }
    fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<Vec<u8>, BoxError> {
        Ok(postcard::to_allocvec(value)?)
    }
    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, BoxError> {
        Ok(postcard::from_bytes(bytes)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Sample {
        id: u64,
        name: String,
        tags: Vec<String>,
    }

    fn round_trip<C: Codec>(codec: C) -> usize {
        let value = Sample {
            id: 7,
            name: "Ada".into(),
            tags: vec!["a".into()],
        };
        let bytes = codec.encode(&value).unwrap();
        assert_eq!(codec.decode::<Sample>(&bytes).unwrap(), value);
        assert!(
            codec.decode::<Sample>(b"\xff\xff").is_err(),
            "{} rejects garbage",
            codec.name()
        );
        bytes.len()
    }

    #[test]
    fn both_codecs_round_trip_and_postcard_is_smaller() {
        let json = round_trip(Json);
        let postcard = round_trip(Postcard);
        assert!(postcard < json, "postcard {postcard} bytes vs json {json}");
        assert_eq!(Json.name(), "json");
        assert_eq!(Postcard.name(), "postcard");
    }
}
