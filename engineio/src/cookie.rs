//! The session cookie of the official server's `cookie` option: the handshake answer sets a cookie
//! holding the session id, so that a load balancer can send a client's later requests to the same
//! server (cookie-based sticky sessions). Off by default, as there.

use http::HeaderValue;

/// The `SameSite` attribute of the session cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSite {
    /// `SameSite=Strict`
    Strict,
    /// `SameSite=Lax` (the default)
    Lax,
    /// `SameSite=None` (browsers require `secure` with it)
    None,
}

/// The cookie set on each handshake answer, the session id as its value (`Config::cookie`).
///
/// The defaults are the official server's for `cookie: true`: `io=<sid>; Path=/; HttpOnly;
/// SameSite=Lax`.
///
/// ```
/// let cookie = engineio::SessionCookie::default();
/// assert_eq!(
///     cookie.header_value("abc").unwrap(),
///     "io=abc; Path=/; HttpOnly; SameSite=Lax"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionCookie {
    /// The cookie name (default `io`).
    pub name: String,
    /// `Path` (default `/`); `None` leaves it out.
    pub path: Option<String>,
    /// `Domain`, if any.
    pub domain: Option<String>,
    /// `Max-Age` in seconds, if any (without it the cookie lasts as long as the browser session).
    pub max_age: Option<u64>,
    /// `HttpOnly` (default true).
    pub http_only: bool,
    /// `Secure` (default false).
    pub secure: bool,
    /// `SameSite` (default `Lax`); `None` leaves it out.
    pub same_site: Option<SameSite>,
}

impl Default for SessionCookie {
    fn default() -> Self {
        SessionCookie {
            name: "io".to_owned(),
            path: Some("/".to_owned()),
            domain: None,
            max_age: None,
            http_only: true,
            secure: false,
            same_site: Some(SameSite::Lax),
        }
    }
}

impl SessionCookie {
    /// The `Set-Cookie` value for session `sid`, attributes in the order the official server writes
    /// them; `None` when the configured name or an attribute cannot go in a header (logged).
    pub fn header_value(&self, sid: &str) -> Option<HeaderValue> {
        let mut value = format!("{}={sid}", self.name);
        if let Some(max_age) = self.max_age {
            value.push_str(&format!("; Max-Age={max_age}"));
        }
        if let Some(domain) = &self.domain {
            value.push_str(&format!("; Domain={domain}"));
        }
        if let Some(path) = &self.path {
            value.push_str(&format!("; Path={path}"));
        }
        if self.http_only {
            value.push_str("; HttpOnly");
        }
        if self.secure {
            value.push_str("; Secure");
        }
        match self.same_site {
            Some(SameSite::Strict) => value.push_str("; SameSite=Strict"),
            Some(SameSite::Lax) => value.push_str("; SameSite=Lax"),
            Some(SameSite::None) => value.push_str("; SameSite=None"),
            None => {}
        }
        let valid_name = !self.name.is_empty()
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b));
        match HeaderValue::from_str(&value) {
            Ok(header) if valid_name => Some(header),
            _ => {
                tracing::warn!(name = %self.name, "session cookie not set: invalid name or attribute");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_attribute_in_the_official_order() {
        // What the official server sets for {name: "sticky", maxAge: 86400, domain: "example.com",
        // secure: true, sameSite: "none"} (checked against it).
        let cookie = SessionCookie {
            name: "sticky".into(),
            max_age: Some(86400),
            domain: Some("example.com".into()),
            secure: true,
            same_site: Some(SameSite::None),
            ..SessionCookie::default()
        };
        assert_eq!(
            cookie.header_value("sid1").unwrap(),
            "sticky=sid1; Max-Age=86400; Domain=example.com; Path=/; HttpOnly; Secure; SameSite=None"
        );
    }

    #[test]
    fn attributes_can_be_left_out() {
        let cookie = SessionCookie {
            path: None,
            http_only: false,
            same_site: None,
            ..SessionCookie::default()
        };
        assert_eq!(cookie.header_value("x").unwrap(), "io=x");
    }

    #[test]
    fn an_invalid_name_or_attribute_sets_no_cookie() {
        for name in ["", "a b", "a;b", "a=b", "é"] {
            let cookie = SessionCookie {
                name: name.into(),
                ..SessionCookie::default()
            };
            assert!(cookie.header_value("x").is_none(), "{name:?}");
        }
        let cookie = SessionCookie {
            domain: Some("a\nb".into()),
            ..SessionCookie::default()
        };
        assert!(cookie.header_value("x").is_none());
    }
}
