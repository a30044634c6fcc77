//! The sessions server's token path before and through verification: the handshake auth payload, the
//! Authorization header and the query string, then the JWT checks. Input: three parts separated by
//! 0x00 (auth JSON, header value, query string). Never panics; a found token is a substring of the
//! input it came from.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sessions_app::auth::{extract_token, KeyMaterial, TokenLookup, Verifier};

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(3, |b| *b == 0);
    let auth = parts.next().unwrap_or_default();
    let header = parts.next().unwrap_or_default();
    let query = parts.next().unwrap_or_default();

    let auth: serde_json::Value = serde_json::from_slice(auth).unwrap_or(serde_json::Value::Null);
    let query_token = form_urlencoded::parse(query)
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned());

    let lookup = extract_token(&auth, Some(header), query_token.as_deref());
    if let TokenLookup::Found(token) = lookup {
        assert!(!token.is_empty());
        let verifier = Verifier::new(
            KeyMaterial::Secret(b"fuzz".to_vec()),
            Some("iss".into()),
            Some("aud".into()),
        )
        .expect("an HMAC key always loads");
        let _ = verifier.verify(token);
    }
});
