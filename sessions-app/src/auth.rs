//! Authentication: where the token comes from, and what it proves.
//!
//! The token is looked up, in this order, in the handshake `auth.token`, the `Authorization: Bearer`
//! header and the `token` query parameter; the first present and non-empty one is used. It must be a
//! JWT signed with the configured key, with a non-empty string `sub`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::Value;

/// Why a connection is refused, as the client sees it in `sessions:error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// No token anywhere.
    MissingToken,
    /// A token that does not prove a user: malformed, badly signed, not yet valid, wrong issuer or
    /// audience, a refused algorithm, or no usable `sub`.
    InvalidToken,
    /// A token whose `exp` has passed.
    TokenExpired,
    /// The user already has the maximum number of live sessions.
    SessionLimit,
    /// Another session of the same user signed this one out.
    Revoked,
}

impl ErrorCode {
    /// The code on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::MissingToken => "missing_token",
            ErrorCode::InvalidToken => "invalid_token",
            ErrorCode::TokenExpired => "token_expired",
            ErrorCode::SessionLimit => "session_limit",
            ErrorCode::Revoked => "revoked",
        }
    }

    /// A sentence for people.
    pub fn message(self) -> &'static str {
        match self {
            ErrorCode::MissingToken => "no token: send auth.token, an Authorization bearer header or a token query parameter",
            ErrorCode::InvalidToken => "the token is not valid",
            ErrorCode::TokenExpired => "the token has expired",
            ErrorCode::SessionLimit => "too many live sessions for this user",
            ErrorCode::Revoked => "this session was signed out from another session",
        }
    }

    /// Every code, for metrics.
    pub const ALL: [ErrorCode; 5] = [
        ErrorCode::MissingToken,
        ErrorCode::InvalidToken,
        ErrorCode::TokenExpired,
        ErrorCode::SessionLimit,
        ErrorCode::Revoked,
    ];
}

/// The token a handshake carries, by the contract's order of sources.
///
/// ```
/// use sessions_app::auth::{extract_token, TokenLookup};
/// let auth = serde_json::json!({ "token": "abc" });
/// assert_eq!(extract_token(&auth, None, None), TokenLookup::Found("abc"));
/// assert_eq!(extract_token(&serde_json::json!({}), Some(&b"Bearer xyz"[..]), None), TokenLookup::Found("xyz"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenLookup<'a> {
    /// A token to verify.
    Found(&'a str),
    /// `auth.token` is present but not a string: a malformed token.
    Malformed,
    /// No token anywhere.
    Missing,
}

/// Finds the token: `auth.token`, then `Authorization: Bearer` (`authorization` is that header's
/// first value, as sent), then the `token` query parameter.
pub fn extract_token<'a>(
    auth: &'a Value,
    authorization: Option<&'a [u8]>,
    query_token: Option<&'a str>,
) -> TokenLookup<'a> {
    match auth.get("token") {
        Some(Value::String(token)) if !token.is_empty() => return TokenLookup::Found(token),
        None | Some(Value::Null) | Some(Value::String(_)) => {}
        Some(_) => return TokenLookup::Malformed,
    }
    // Only visible ASCII is a token (what `HeaderValue::to_str` accepts); other bytes make the
    // header count as absent.
    if let Some(token) = authorization
        .filter(|value| {
            value
                .iter()
                .all(|&byte| byte == b'\t' || (b' '..=b'~').contains(&byte))
        })
        .and_then(|value| std::str::from_utf8(value).ok())
        .and_then(bearer)
    {
        return TokenLookup::Found(token);
    }
    match query_token {
        Some(token) if !token.is_empty() => TokenLookup::Found(token),
        _ => TokenLookup::Missing,
    }
}

fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The key tokens are checked with.
#[derive(Clone)]
pub enum KeyMaterial {
    /// An HMAC shared secret (HS256/384/512).
    Secret(Vec<u8>),
    /// An RSA public key (RS256/384/512, PS256/384/512).
    Rsa(Vec<u8>),
    /// An EC public key (ES256/384).
    Ec(Vec<u8>),
}

impl std::fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.write_str(match self {
            KeyMaterial::Secret(_) => "KeyMaterial::Secret(..)",
            KeyMaterial::Rsa(_) => "KeyMaterial::Rsa(..)",
            KeyMaterial::Ec(_) => "KeyMaterial::Ec(..)",
        })
    }
}

/// Why a key could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The PEM is neither an RSA nor an EC public key.
    #[error("not an RSA or EC public key in PEM form")]
    UnsupportedKey,
    /// The PEM is a private key, which verifies nothing.
    #[error("a private key, not a public key: give its public key (openssl pkey -in KEY -pubout)")]
    PrivateKey,
    /// An EC key on a curve no supported algorithm uses.
    #[error("an EC key on a curve other than P-256 (ES256) or P-384 (ES384)")]
    UnsupportedCurve,
    /// A token could not be signed (only HMAC secrets can sign).
    #[error("tokens can only be issued with a shared secret (--jwt-secret)")]
    CannotSign,
    /// Signing failed.
    #[error("signing failed: {0}")]
    Signing(#[from] jsonwebtoken::errors::Error),
}

impl KeyMaterial {
    /// Reads a PEM public key (or certificate), RSA or EC on P-256 / P-384. Keys the JWT library
    /// would load but could never verify a token with are refused here, at startup: private keys
    /// and other EC curves.
    pub fn from_public_pem(pem: &[u8]) -> Result<Self, KeyError> {
        let der = pem_der(pem).ok_or(KeyError::UnsupportedKey)?;
        if der.label.contains("PRIVATE KEY") {
            return Err(KeyError::PrivateKey);
        }
        if DecodingKey::from_rsa_pem(pem).is_ok() {
            Ok(KeyMaterial::Rsa(pem.to_vec()))
        } else if DecodingKey::from_ec_pem(pem).is_ok() {
            // The curve's OID, DER-encoded, in the key's algorithm parameters.
            const P256: &[u8] = &[0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];
            const P384: &[u8] = &[0x06, 0x05, 0x2B, 0x81, 0x04, 0x00, 0x22];
            let on = |oid: &[u8]| der.bytes.windows(oid.len()).any(|w| w == oid);
            if on(P256) || on(P384) {
                Ok(KeyMaterial::Ec(pem.to_vec()))
            } else {
                Err(KeyError::UnsupportedCurve)
            }
        } else {
            Err(KeyError::UnsupportedKey)
        }
    }

    fn algorithms(&self) -> Vec<Algorithm> {
        match self {
            KeyMaterial::Secret(_) => vec![Algorithm::HS256, Algorithm::HS384, Algorithm::HS512],
            KeyMaterial::Rsa(_) => vec![
                Algorithm::RS256,
                Algorithm::RS384,
                Algorithm::RS512,
                Algorithm::PS256,
                Algorithm::PS384,
                Algorithm::PS512,
            ],
            KeyMaterial::Ec(_) => vec![Algorithm::ES256, Algorithm::ES384],
        }
    }

    fn decoding_key(&self) -> Result<DecodingKey, jsonwebtoken::errors::Error> {
        match self {
            KeyMaterial::Secret(secret) => Ok(DecodingKey::from_secret(secret)),
            KeyMaterial::Rsa(pem) => DecodingKey::from_rsa_pem(pem),
            KeyMaterial::Ec(pem) => DecodingKey::from_ec_pem(pem),
        }
    }
}

/// The first block of a PEM file: its label and its bytes.
struct PemBlock {
    label: String,
    bytes: Vec<u8>,
}

fn pem_der(pem: &[u8]) -> Option<PemBlock> {
    use base64::Engine as _;
    let text = std::str::from_utf8(pem).ok()?;
    let (_, rest) = text.split_once("-----BEGIN ")?;
    let (label, rest) = rest.split_once("-----")?;
    let (body, _) = rest.split_once("-----END ")?;
    let body: String = body.split_whitespace().collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(body)
        .ok()?;
    Some(PemBlock {
        label: label.to_owned(),
        bytes,
    })
}

/// A verified token: who it is, and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The user (`sub`).
    pub user: String,
    /// When the token expires (`exp`), if it does.
    pub expires_at: Option<SystemTime>,
}

/// Checks tokens against a key and the configured issuer and audience.
#[derive(Clone)]
pub struct Verifier {
    key: DecodingKey,
    material: KeyMaterial,
    validation: Validation,
    issuer: Option<String>,
    audience: Option<String>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("key", &self.material)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish()
    }
}

impl Verifier {
    /// A verifier for this key; `issuer` and `audience`, when set, must match.
    pub fn new(
        material: KeyMaterial,
        issuer: Option<String>,
        audience: Option<String>,
    ) -> Result<Self, KeyError> {
        let key = material
            .decoding_key()
            .map_err(|_| KeyError::UnsupportedKey)?;
        let algorithms = material.algorithms();
        let mut validation = Validation::new(algorithms[0]);
        // Only the algorithms of the configured key kind: `none` and algorithm confusion fail here.
        validation.algorithms = algorithms;
        // The library checks the signature only. It skips a time claim it cannot read as an
        // unsigned integer (a string `nbf`, a negative `exp`), lets `exp` equal to the current
        // second pass and accepts an array `iss`, so the claims are checked by `check_claims`.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.iss = None;
        validation.required_spec_claims.clear();
        Ok(Verifier {
            key,
            material,
            validation,
            issuer,
            audience,
        })
    }

    /// Verifies a token: its header, its signature, then its claims (see [`check_claims`]).
    pub fn verify(&self, token: &str) -> Result<Identity, ErrorCode> {
        if has_critical_extensions(token) {
            return Err(ErrorCode::InvalidToken);
        }
        let data = jsonwebtoken::decode::<serde_json::Map<String, Value>>(
            token,
            &self.key,
            &self.validation,
        )
        .map_err(|_| ErrorCode::InvalidToken)?;
        check_claims(
            &data.claims,
            SystemTime::now(),
            self.issuer.as_deref(),
            self.audience.as_deref(),
        )
    }

    /// Signs a token for `sub` valid for `ttl`, with the configured issuer and audience.
    pub fn issue(&self, sub: &str, ttl: Duration) -> Result<String, KeyError> {
        let KeyMaterial::Secret(secret) = &self.material else {
            return Err(KeyError::CannotSign);
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let mut claims = serde_json::json!({
            "sub": sub,
            "iat": now,
            "exp": now.saturating_add(ttl.as_secs()),
        });
        if let Some(iss) = &self.issuer {
            claims["iss"] = Value::String(iss.clone());
        }
        if let Some(aud) = &self.audience {
            claims["aud"] = Value::String(aud.clone());
        }
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(secret),
        )?)
    }
}

/// Whether the token's header names extensions that must be understood (`crit`, RFC 7515 4.1.11).
/// This server understands none, so such a token must be refused; the JWT library ignores `crit`.
fn has_critical_extensions(token: &str) -> bool {
    use base64::Engine as _;
    let Some(header) = token.split('.').next() else {
        return false;
    };
    // A header that does not decode fails the library's own checks right after.
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .ok()
        .and_then(|json| serde_json::from_slice::<serde_json::Map<String, Value>>(&json).ok())
        .is_some_and(|header| header.contains_key("crit"))
}

/// Checks the claims of a token whose signature holds, at `now`, as RFC 7519 reads them (the
/// Node `jsonwebtoken` package gives the same answers, except that it compares a fractional `exp`
/// with the current second only, and lets a token live until that second ends):
/// - `nbf` and `exp`, when present, must be numbers; `nbf` must not be after the current second;
/// - with a configured issuer, `iss` must be that string; with a configured audience, `aud` must
///   be that string or an array holding it;
/// - `sub` must be a non-empty string;
/// - `exp` must be after `now` (a token whose `exp` is this very second is expired, since
///   RFC 7519 4.1.4 wants the current time *before* it): [`ErrorCode::TokenExpired`], only for a
///   token that passes every other check.
///
/// Every other failure is [`ErrorCode::InvalidToken`].
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use sessions_app::auth::{check_claims, ErrorCode};
/// let claims = serde_json::json!({ "sub": "alice", "exp": 1000 });
/// let claims = claims.as_object().unwrap();
/// let at = |secs| UNIX_EPOCH + Duration::from_secs(secs);
/// assert_eq!(check_claims(claims, at(999), None, None).unwrap().user, "alice");
/// assert_eq!(check_claims(claims, at(1000), None, None), Err(ErrorCode::TokenExpired));
/// ```
pub fn check_claims(
    claims: &serde_json::Map<String, Value>,
    now: SystemTime,
    issuer: Option<&str>,
    audience: Option<&str>,
) -> Result<Identity, ErrorCode> {
    let now_secs = now
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    let number = |name: &str| match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => n.as_f64().map(Some).ok_or(ErrorCode::InvalidToken),
        Some(_) => Err(ErrorCode::InvalidToken),
    };
    let not_before = number("nbf")?;
    let expires = number("exp")?;
    if not_before.is_some_and(|nbf| nbf > now_secs.floor()) {
        return Err(ErrorCode::InvalidToken);
    }
    if let Some(issuer) = issuer {
        if claims.get("iss").and_then(Value::as_str) != Some(issuer) {
            return Err(ErrorCode::InvalidToken);
        }
    }
    if let Some(audience) = audience {
        let matches = match claims.get("aud") {
            Some(Value::String(aud)) => aud == audience,
            Some(Value::Array(auds)) => auds.iter().any(|aud| aud.as_str() == Some(audience)),
            _ => false,
        };
        if !matches {
            return Err(ErrorCode::InvalidToken);
        }
    }
    let user = match claims.get("sub") {
        Some(Value::String(sub)) if !sub.is_empty() => sub.clone(),
        _ => return Err(ErrorCode::InvalidToken),
    };
    // Last: `token_expired` says the token was good and is no longer, so any other fault wins.
    if expires.is_some_and(|exp| exp <= now_secs) {
        return Err(ErrorCode::TokenExpired);
    }
    // An `exp` past what a clock can hold (a signed token may say anything) never comes: no
    // expiry timer rather than an overflow.
    let expires_at = expires.and_then(|secs| {
        Duration::try_from_secs_f64(secs)
            .ok()
            .and_then(|after| UNIX_EPOCH.checked_add(after))
    });
    Ok(Identity { user, expires_at })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn headers(auth: &str) -> Option<&[u8]> {
        Some(auth.as_bytes())
    }

    #[test]
    fn sources_in_order() {
        let none = None;
        assert_eq!(
            extract_token(&json!({"token": "a"}), headers("Bearer b"), Some("c")),
            TokenLookup::Found("a")
        );
        assert_eq!(
            extract_token(&json!({"token": ""}), headers("Bearer b"), Some("c")),
            TokenLookup::Found("b")
        );
        assert_eq!(
            extract_token(&json!({}), headers("bearer  b "), Some("c")),
            TokenLookup::Found("b")
        );
        assert_eq!(
            extract_token(&json!({}), headers("Basic x"), Some("c")),
            TokenLookup::Found("c")
        );
        assert_eq!(
            extract_token(&json!({}), headers("Bearer "), Some("")),
            TokenLookup::Missing
        );
        assert_eq!(extract_token(&json!({}), none, None), TokenLookup::Missing);
        assert_eq!(
            extract_token(&json!({"token": 5}), none, None),
            TokenLookup::Malformed
        );
        assert_eq!(
            extract_token(&json!("str"), none, Some("q")),
            TokenLookup::Found("q")
        );
        // A header with bytes beyond visible ASCII is not a token source.
        assert_eq!(
            extract_token(&json!({}), Some(&b"Bearer caf\xe9"[..]), Some("q")),
            TokenLookup::Found("q")
        );
    }

    fn verifier(iss: Option<&str>, aud: Option<&str>) -> Verifier {
        Verifier::new(
            KeyMaterial::Secret(b"secret".to_vec()),
            iss.map(str::to_owned),
            aud.map(str::to_owned),
        )
        .unwrap()
    }

    fn sign(claims: Value, secret: &[u8], alg: Algorithm) -> String {
        jsonwebtoken::encode(
            &Header::new(alg),
            &claims,
            &EncodingKey::from_secret(secret),
        )
        .unwrap()
    }

    fn now() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    #[test]
    fn accepts_a_good_token_and_issues_one() {
        let v = verifier(Some("me"), Some("app"));
        let token = v.issue("alice", Duration::from_secs(60)).unwrap();
        assert_eq!(v.verify(&token).unwrap().user, "alice");
        let hs512 = sign(
            json!({"sub": "bob", "iss": "me", "aud": "app"}),
            b"secret",
            Algorithm::HS512,
        );
        assert_eq!(v.verify(&hs512).unwrap().user, "bob");
    }

    #[test]
    fn an_exp_beyond_any_clock_is_no_expiry_not_a_panic() {
        let v = verifier(None, None);
        for exp in [json!(1e300), json!(u64::MAX), json!(9.3e18)] {
            let token = sign(json!({"sub": "a", "exp": exp}), b"secret", Algorithm::HS256);
            let identity = v.verify(&token).expect("valid signature, far future");
            assert_eq!(identity.expires_at, None, "exp {exp}");
        }
    }

    #[test]
    fn classifies_bad_tokens() {
        let v = verifier(Some("me"), Some("app"));
        let good = json!({"sub": "a", "iss": "me", "aud": "app", "exp": now() + 60});
        assert_eq!(
            v.verify(&sign(good.clone(), b"other", Algorithm::HS256)),
            Err(ErrorCode::InvalidToken)
        );
        let mut expired = good.clone();
        expired["exp"] = json!(now() - 5);
        assert_eq!(
            v.verify(&sign(expired, b"secret", Algorithm::HS256)),
            Err(ErrorCode::TokenExpired)
        );
        let mut future = good.clone();
        future["nbf"] = json!(now() + 600);
        assert_eq!(
            v.verify(&sign(future, b"secret", Algorithm::HS256)),
            Err(ErrorCode::InvalidToken)
        );
        let mut wrong_iss = good.clone();
        wrong_iss["iss"] = json!("you");
        assert_eq!(
            v.verify(&sign(wrong_iss, b"secret", Algorithm::HS256)),
            Err(ErrorCode::InvalidToken)
        );
        let mut wrong_aud = good.clone();
        wrong_aud["aud"] = json!("other");
        assert_eq!(
            v.verify(&sign(wrong_aud, b"secret", Algorithm::HS256)),
            Err(ErrorCode::InvalidToken)
        );
        for sub in [json!(""), json!(5), Value::Null] {
            let mut bad = good.clone();
            bad["sub"] = sub;
            assert_eq!(
                v.verify(&sign(bad, b"secret", Algorithm::HS256)),
                Err(ErrorCode::InvalidToken)
            );
        }
        assert_eq!(v.verify("not.a.jwt"), Err(ErrorCode::InvalidToken));
    }

    #[test]
    fn token_expired_only_when_expiry_is_the_only_fault() {
        let v = verifier(Some("me"), Some("app"));
        let expired = json!({"sub": "a", "iss": "me", "aud": "app", "exp": now() - 5});
        let faults = [
            ("aud", json!("other")),
            ("iss", json!("you")),
            ("nbf", json!(now() + 600)),
            ("sub", json!("")),
        ];
        for (claim, value) in faults {
            let mut token = expired.clone();
            token[claim] = value;
            assert_eq!(
                v.verify(&sign(token, b"secret", Algorithm::HS256)),
                Err(ErrorCode::InvalidToken),
                "expired and a bad {claim}"
            );
        }
        assert_eq!(
            v.verify(&sign(expired.clone(), b"other", Algorithm::HS256)),
            Err(ErrorCode::InvalidToken),
            "expired and a bad signature"
        );
        assert_eq!(
            v.verify(&sign(expired, b"secret", Algorithm::HS256)),
            Err(ErrorCode::TokenExpired)
        );
    }

    #[test]
    fn only_keys_that_can_verify_are_loaded() {
        let fixture = |name: &str| {
            std::fs::read(format!(
                "{}/tests/fixtures/{name}",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap()
        };
        assert!(matches!(
            KeyMaterial::from_public_pem(&fixture("rsa_public.pem")),
            Ok(KeyMaterial::Rsa(_))
        ));
        assert!(matches!(
            KeyMaterial::from_public_pem(&fixture("ec_public.pem")),
            Ok(KeyMaterial::Ec(_))
        ));
        for private in ["rsa_private.pem", "rsa_private_pkcs8.pem", "ec_private.pem"] {
            assert!(
                matches!(
                    KeyMaterial::from_public_pem(&fixture(private)),
                    Err(KeyError::PrivateKey)
                ),
                "{private}"
            );
        }
        assert!(matches!(
            KeyMaterial::from_public_pem(&fixture("ec_p521_public.pem")),
            Err(KeyError::UnsupportedCurve)
        ));
        assert!(matches!(
            KeyMaterial::from_public_pem(b"not a pem"),
            Err(KeyError::UnsupportedKey)
        ));
    }

    #[test]
    fn alg_none_is_refused() {
        use base64::Engine as _;
        let b64 =
            |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        let token = format!(
            "{}.{}.",
            b64(&json!({"alg": "none", "typ": "JWT"})),
            b64(&json!({"sub": "a"}))
        );
        assert_eq!(
            verifier(None, None).verify(&token),
            Err(ErrorCode::InvalidToken)
        );
    }

    #[test]
    fn critical_header_extensions_are_refused() {
        let v = verifier(None, None);
        let claims = json!({"sub": "a", "exp": now() + 60});
        let header = Header::new(Algorithm::HS256);
        assert!(v
            .verify(
                &jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(b"secret"))
                    .unwrap()
            )
            .is_ok());
        // `Header` has no `crit` field: sign a header JSON of our own.
        let token = {
            use base64::Engine as _;
            use jsonwebtoken::crypto::sign;
            let b64 =
                |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
            let message = format!(
                "{}.{}",
                b64(&json!({"alg": "HS256", "typ": "JWT", "crit": ["x-ext"], "x-ext": 1})),
                b64(&claims)
            );
            let signature = sign(
                message.as_bytes(),
                &EncodingKey::from_secret(b"secret"),
                Algorithm::HS256,
            )
            .unwrap();
            format!("{message}.{signature}")
        };
        assert_eq!(v.verify(&token), Err(ErrorCode::InvalidToken));
    }

    #[test]
    fn audience_is_ignored_when_not_configured() {
        let token = sign(json!({"sub": "a", "aud": "x"}), b"secret", Algorithm::HS256);
        assert_eq!(verifier(None, None).verify(&token).unwrap().user, "a");
    }

    fn claims(value: Value) -> serde_json::Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    fn at(secs: f64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs_f64(secs)
    }

    #[test]
    fn exp_is_expired_from_its_own_second_on() {
        let c = claims(json!({"sub": "a", "exp": 1000}));
        assert!(check_claims(&c, at(999.999), None, None).is_ok());
        for now in [1000.0, 1000.4, 5000.0] {
            assert_eq!(
                check_claims(&c, at(now), None, None),
                Err(ErrorCode::TokenExpired),
                "now {now}"
            );
        }
        let fractional = claims(json!({"sub": "a", "exp": 1000.5}));
        assert!(check_claims(&fractional, at(1000.2), None, None).is_ok());
        assert_eq!(
            check_claims(&fractional, at(1000.5), None, None),
            Err(ErrorCode::TokenExpired)
        );
        let negative = claims(json!({"sub": "a", "exp": -5}));
        assert_eq!(
            check_claims(&negative, at(1000.0), None, None),
            Err(ErrorCode::TokenExpired)
        );
    }

    #[test]
    fn nbf_holds_from_its_own_second_on() {
        let c = claims(json!({"sub": "a", "nbf": 1000}));
        assert_eq!(
            check_claims(&c, at(999.9), None, None),
            Err(ErrorCode::InvalidToken)
        );
        assert!(check_claims(&c, at(1000.0), None, None).is_ok());
    }

    #[test]
    fn time_claims_that_are_not_numbers_are_invalid() {
        for bad in [
            json!({"sub": "a", "nbf": "2000"}),
            json!({"sub": "a", "nbf": null}),
            json!({"sub": "a", "exp": "99999999999"}),
            json!({"sub": "a", "exp": [99999999999u64]}),
            json!({"sub": "a", "exp": true}),
        ] {
            assert_eq!(
                check_claims(&claims(bad.clone()), at(1000.0), None, None),
                Err(ErrorCode::InvalidToken),
                "{bad}"
            );
        }
    }

    #[test]
    fn issuer_is_one_string_and_audience_a_string_or_an_array_holding_it() {
        let check = |c: Value| check_claims(&claims(c), at(1000.0), Some("me"), Some("app"));
        assert!(check(json!({"sub": "a", "iss": "me", "aud": "app"})).is_ok());
        assert!(check(json!({"sub": "a", "iss": "me", "aud": ["x", "app"]})).is_ok());
        for bad in [
            json!({"sub": "a", "iss": ["me"], "aud": "app"}),
            json!({"sub": "a", "iss": ["me", "you"], "aud": "app"}),
            json!({"sub": "a", "iss": "me", "aud": ["x"]}),
            json!({"sub": "a", "iss": "me", "aud": 5}),
            json!({"sub": "a", "iss": "me"}),
            json!({"sub": "a", "aud": "app"}),
        ] {
            assert_eq!(check(bad.clone()), Err(ErrorCode::InvalidToken), "{bad}");
        }
    }

    #[test]
    fn a_token_expiring_this_second_is_refused_end_to_end() {
        let v = verifier(None, None);
        let token = sign(
            json!({"sub": "a", "exp": now()}),
            b"secret",
            Algorithm::HS256,
        );
        assert_eq!(v.verify(&token), Err(ErrorCode::TokenExpired));
        let string_nbf = sign(
            json!({"sub": "a", "nbf": (now() + 600).to_string()}),
            b"secret",
            Algorithm::HS256,
        );
        assert_eq!(v.verify(&string_nbf), Err(ErrorCode::InvalidToken));
    }
}
