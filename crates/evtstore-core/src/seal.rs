//! Crypto-shredding: the bodies of an aggregate kind with
//! [`ENCRYPTED`](crate::Aggregate::ENCRYPTED) are sealed with a key of their aggregate
//! (XChaCha20-Poly1305), kept by the provider. Forgetting the key makes every one of them
//! unreadable at once: reads then see them as shredded, not as undecodable.

use std::collections::{HashMap, HashSet};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::event::{EventMeta, StoredEvent};
use crate::provider::Provider;

/// The body a shredded event is read as: its key is gone.
pub(crate) const SHREDDED: &str = r#"{"type":"$shredded"}"#;

/// The key of one aggregate, as its provider keeps it.
#[derive(Clone, PartialEq, Eq)]
pub struct AggregateKey {
    /// Which key: a sealed body names the key that sealed it.
    pub id: Uuid,
    /// The secret, 32 bytes.
    pub secret: Vec<u8>,
}

impl std::fmt::Debug for AggregateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AggregateKey({}, secret hidden)", self.id)
    }
}

impl AggregateKey {
    /// A new random key, for a provider to store.
    pub fn generate() -> Self {
        AggregateKey {
            id: Uuid::now_v7(),
            secret: XChaCha20Poly1305::generate_key(&mut OsRng).to_vec(),
        }
    }

    fn cipher(&self) -> Result<XChaCha20Poly1305> {
        XChaCha20Poly1305::new_from_slice(&self.secret)
            .map_err(|_| Error::backend("aggregate key", "a stored key is not 32 bytes"))
    }

    /// Seals an event body: `{"type": …, "$sealed": "<key id>.<nonce and ciphertext>"}`. The
    /// type stays readable, so that handlers know events they skip.
    pub(crate) fn seal(&self, event_type: &str, data: &str) -> Result<String> {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let sealed = self.cipher()?.encrypt(&nonce, data.as_bytes());
        let sealed = sealed.map_err(|_| Error::backend("seal an event", "encryption failed"))?;
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&sealed);
        let envelope = serde_json::json!({
            "type": event_type,
            "$sealed": format!("{}.{}", self.id.simple(), BASE64.encode(bytes)),
        });
        Ok(envelope.to_string())
    }
}

/// A sealed body, read: the key that sealed it and the nonce and ciphertext.
struct Sealed {
    key_id: Uuid,
    bytes: Vec<u8>,
}

/// The sealed part of a body, when it is one.
fn sealed(data: &str) -> Option<Sealed> {
    if !data.contains("\"$sealed\"") {
        return None;
    }
    #[derive(serde::Deserialize)]
    struct Body {
        #[serde(rename = "$sealed")]
        sealed: String,
    }
    let body: Body = serde_json::from_str(data).ok()?;
    let (key_id, text) = body.sealed.split_once('.')?;
    Some(Sealed {
        key_id: Uuid::parse_str(key_id).ok()?,
        bytes: BASE64.decode(text).ok()?,
    })
}

/// The body as written, when `data` is sealed: opened with `key`, or [`SHREDDED`] when the key
/// that sealed it is gone. `None` when the body is not sealed.
///
/// # Errors
/// When the key is there but the body does not open: it was altered.
pub(crate) fn open(
    meta: &EventMeta,
    data: &str,
    key: Option<&AggregateKey>,
) -> Result<Option<String>> {
    let Some(sealed) = sealed(data) else {
        return Ok(None);
    };
    let Some(key) = key.filter(|key| key.id == sealed.key_id) else {
        return Ok(Some(SHREDDED.to_owned()));
    };
    let corrupt = || {
        let what = format!(
            "open {}/{} version {}",
            meta.stream, meta.aggregate_id, meta.version
        );
        Error::backend(
            what,
            "the sealed body does not open with its key: it was altered",
        )
    };
    if sealed.bytes.len() < 24 {
        return Err(corrupt());
    }
    let (nonce, ciphertext) = sealed.bytes.split_at(24);
    let plain = key.cipher()?.decrypt(XNonce::from_slice(nonce), ciphertext);
    let plain = plain.map_err(|_| corrupt())?;
    String::from_utf8(plain).map(Some).map_err(|_| corrupt())
}

/// The keys of a page's sealed events, by (stream, aggregate id): `None` when shredded.
pub(crate) type PageKeys = HashMap<(String, String), Option<AggregateKey>>;

/// Opens the sealed bodies of a page in place, reading each aggregate's key once; a shredded
/// one becomes a marker (revision 0) that handlers report to their `shredded` callback.
///
/// # Errors
/// When a key cannot be read, or a sealed body was altered.
pub(crate) async fn open_page(provider: &dyn Provider, page: &mut [StoredEvent]) -> Result<()> {
    let mut keys = PageKeys::new();
    for (stream, id) in sealed_aggregates(page) {
        let key = provider.aggregate_key(&stream, &id, false).await?;
        keys.insert((stream, id), key);
    }
    open_with(page, &keys)
}

/// Whether a body may be sealed (a quick look; [`open`] checks).
fn is_sealed(data: &str) -> bool {
    data.contains("\"$sealed\"")
}

/// An event's aggregate, as [`PageKeys`] names it.
fn place(meta: &EventMeta) -> (String, String) {
    (meta.stream.to_string(), meta.aggregate_id.to_string())
}

/// The aggregates of a page's sealed events, each once.
pub(crate) fn sealed_aggregates(page: &[StoredEvent]) -> HashSet<(String, String)> {
    let sealed = page.iter().filter(|e| is_sealed(&e.data));
    sealed.map(|e| place(&e.meta)).collect()
}

/// Opens the sealed bodies of a page in place with their aggregates' keys, read before.
///
/// # Errors
/// When a sealed body was altered.
pub(crate) fn open_with(page: &mut [StoredEvent], keys: &PageKeys) -> Result<()> {
    for event in page.iter_mut().filter(|e| is_sealed(&e.data)) {
        let key = keys.get(&place(&event.meta)).and_then(Option::as_ref);
        if let Some(opened) = open(&event.meta, &event.data, key)? {
            if opened == SHREDDED {
                event.meta.revision = 0;
            }
            event.data = opened;
        }
    }
    Ok(())
}
