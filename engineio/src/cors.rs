//! Cross-origin resource sharing, as the official server applies it through the `cors` package.

use http::header::{self, HeaderMap, HeaderValue};

/// Which origins may call the server from a browser.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AllowedOrigins {
    /// Any origin: `Access-Control-Allow-Origin: *`.
    Any,
    /// Any origin, echoed back (needed together with credentials).
    Mirror,
    /// Only these origins (exact match, like `https://example.com`).
    List(Vec<String>),
}

/// CORS settings.
///
/// ```
/// use engineio::{Cors, AllowedOrigins};
/// let cors = Cors { origins: AllowedOrigins::List(vec!["https://app.example".into()]), credentials: true, ..Cors::default() };
/// assert!(cors.credentials);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cors {
    /// Allowed origins (default: any).
    pub origins: AllowedOrigins,
    /// Send `Access-Control-Allow-Credentials: true`.
    pub credentials: bool,
    /// `Access-Control-Allow-Methods` for preflight requests.
    pub methods: String,
    /// `Access-Control-Allow-Headers`; `None` echoes the preflight's requested headers.
    pub allowed_headers: Option<String>,
    /// `Access-Control-Max-Age` in seconds for preflight answers.
    pub max_age: Option<u32>,
}

impl Default for Cors {
    fn default() -> Self {
        Cors {
            origins: AllowedOrigins::Any,
            credentials: false,
            methods: "GET,HEAD,PUT,PATCH,POST,DELETE".to_owned(),
            allowed_headers: None,
            max_age: None,
        }
    }
}

impl Cors {
    /// Adds the headers of an actual (non-preflight) response.
    pub(crate) fn apply(&self, request: &HeaderMap, response: &mut HeaderMap) {
        let origin = request.get(header::ORIGIN);
        match &self.origins {
            AllowedOrigins::Any => {
                response.insert(
                    header::ACCESS_CONTROL_ALLOW_ORIGIN,
                    HeaderValue::from_static("*"),
                );
            }
            AllowedOrigins::Mirror => {
                if let Some(origin) = origin {
                    response.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
                }
                response.append(header::VARY, HeaderValue::from_static("Origin"));
            }
            AllowedOrigins::List(list) => {
                if let Some(origin) =
                    origin.filter(|o| list.iter().any(|l| l.as_bytes() == o.as_bytes()))
                {
                    response.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
                }
                response.append(header::VARY, HeaderValue::from_static("Origin"));
            }
        }
        if self.credentials {
            response.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
    }

    /// Adds the headers of a preflight (`OPTIONS`) answer.
    pub(crate) fn apply_preflight(&self, request: &HeaderMap, response: &mut HeaderMap) {
        self.apply(request, response);
        if let Ok(methods) = HeaderValue::from_str(&self.methods) {
            response.insert(header::ACCESS_CONTROL_ALLOW_METHODS, methods);
        }
        match &self.allowed_headers {
            Some(list) => {
                if let Ok(value) = HeaderValue::from_str(list) {
                    response.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, value);
                }
            }
            None => {
                if let Some(requested) = request.get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
                    response.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, requested.clone());
                }
                response.append(
                    header::VARY,
                    HeaderValue::from_static("Access-Control-Request-Headers"),
                );
            }
        }
        if let Some(age) = self.max_age {
            response.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from(age));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(origin: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ORIGIN, HeaderValue::from_str(origin).unwrap());
        h
    }

    #[test]
    fn any_origin_is_a_star() {
        let mut out = HeaderMap::new();
        Cors::default().apply(&request("https://a.example"), &mut out);
        assert_eq!(out[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
    }

    #[test]
    fn listed_origin_is_echoed_and_others_are_not() {
        let cors = Cors {
            origins: AllowedOrigins::List(vec!["https://a.example".into()]),
            credentials: true,
            ..Cors::default()
        };
        let mut out = HeaderMap::new();
        cors.apply(&request("https://a.example"), &mut out);
        assert_eq!(
            out[header::ACCESS_CONTROL_ALLOW_ORIGIN],
            "https://a.example"
        );
        assert_eq!(out[header::ACCESS_CONTROL_ALLOW_CREDENTIALS], "true");
        let mut out = HeaderMap::new();
        cors.apply(&request("https://evil.example"), &mut out);
        assert!(out.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
    }

    #[test]
    fn preflight_echoes_requested_headers() {
        let mut req = request("https://a.example");
        req.insert(
            header::ACCESS_CONTROL_REQUEST_HEADERS,
            HeaderValue::from_static("x-a"),
        );
        let mut out = HeaderMap::new();
        Cors::default().apply_preflight(&req, &mut out);
        assert_eq!(out[header::ACCESS_CONTROL_ALLOW_HEADERS], "x-a");
        assert_eq!(
            out[header::ACCESS_CONTROL_ALLOW_METHODS],
            "GET,HEAD,PUT,PATCH,POST,DELETE"
        );
    }
}
