//! Session ids: 120 random bits from the operating system's CSPRNG, URL-safe base64 (20 characters).

use base64::Engine as _;
use rand::RngCore;

/// A fresh id: 120 random bits, URL-safe base64 (20 characters). Used for Engine.IO session ids and,
/// by the Socket.IO layer, for socket ids.
pub fn generate() -> String {
    let mut bytes = [0u8; 15];
    // ThreadRng is ChaCha12 seeded from the OS: a CSPRNG, without a system call per id.
    rand::thread_rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_url_safe_and_distinct() {
        let a = super::generate();
        let b = super::generate();
        assert_eq!(a.len(), 20);
        assert_ne!(a, b);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
    }
}
