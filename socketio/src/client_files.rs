//! Serving the browser client bundle under the server's path, as the official server's
//! `serveClient` option does (`<script src="/socket.io/socket.io.js">`).
//!
//! The bundle itself is the official client's build output, which this project does not ship:
//! [`ClientFiles::from_dir`] reads it from the `client-dist/` folder of the `socket.io` npm package
//! (or the `dist/` folder of `socket.io-client`). What is served, and how, follows the official
//! server: the same eight file names, an `ETag` of the version in quotes (a matching
//! `If-None-Match`, strong or weak, gets an empty `304`), `Cache-Control: public, max-age=0`, and
//! Brotli, gzip or deflate as the request's `Accept-Encoding` ranks them.

use std::collections::HashMap;
use std::io;
use std::path::Path;

use bytes::Bytes;
use engineio::{Body, ContentCoding};
use http::{header, HeaderMap, HeaderValue, Response, StatusCode};
use http_body_util::Full;
use tokio::sync::OnceCell;

/// The files the official server serves, each from `<path>/<name>`.
pub const CLIENT_FILE_NAMES: [&str; 8] = [
    "socket.io.esm.min.js",
    "socket.io.esm.min.js.map",
    "socket.io.js",
    "socket.io.js.map",
    "socket.io.min.js",
    "socket.io.min.js.map",
    "socket.io.msgpack.min.js",
    "socket.io.msgpack.min.js.map",
];

/// The codings a client file may be sent with, the server's preference first (as the official
/// server lists them).
const CODINGS: [ContentCoding; 3] = [
    ContentCoding::Brotli,
    ContentCoding::Gzip,
    ContentCoding::Deflate,
];

/// The client bundle, held in memory, to serve under the server's path; see
/// [`Config::serve_client`](crate::Config::serve_client).
///
/// ```no_run
/// # fn demo() -> Result<(), socketio::ClientFilesError> {
/// let mut config = socketio::Config::default();
/// let files = socketio::ClientFiles::from_dir("node_modules/socket.io/client-dist", "4.8.1")?;
/// config.serve_client = Some(std::sync::Arc::new(files));
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct ClientFiles {
    etag: HeaderValue,
    weak_etag: String,
    files: HashMap<&'static str, ClientFile>,
}

#[derive(Debug)]
struct ClientFile {
    raw: Bytes,
    /// Each coding's output, made on the first request that asks for it.
    compressed: [OnceCell<Bytes>; 3],
}

/// Why [`ClientFiles`] could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientFilesError {
    /// A file exists but could not be read.
    #[error("reading the client file {name}: {source}")]
    Read {
        /// The file's name.
        name: &'static str,
        /// What reading it returned.
        source: io::Error,
    },
    /// None of the client files is in the folder.
    #[error("no client file (socket.io.js, socket.io.min.js, …) in {0}")]
    NoFiles(String),
    /// The version cannot be a header value.
    #[error("the version {0:?} cannot be sent in an ETag header")]
    BadVersion(String),
}

impl ClientFiles {
    /// Reads every client file present in `dir`; `version` makes the `ETag` (the official server
    /// uses its own package version). At least one file must be there.
    pub fn from_dir(
        dir: impl AsRef<Path>,
        version: impl Into<String>,
    ) -> Result<ClientFiles, ClientFilesError> {
        let dir = dir.as_ref();
        let mut files = HashMap::new();
        for name in CLIENT_FILE_NAMES {
            match std::fs::read(dir.join(name)) {
                Ok(raw) => {
                    files.insert(name, ClientFile::new(Bytes::from(raw)));
                }
                Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                Err(source) => return Err(ClientFilesError::Read { name, source }),
            }
        }
        if files.is_empty() {
            return Err(ClientFilesError::NoFiles(dir.display().to_string()));
        }
        Self::with_files(files, version.into())
    }

    /// Client files from memory: `(name, contents)` pairs; names other than
    /// [`CLIENT_FILE_NAMES`] are left out.
    pub fn from_memory(
        files: impl IntoIterator<Item = (&'static str, Bytes)>,
        version: impl Into<String>,
    ) -> Result<ClientFiles, ClientFilesError> {
        let files = files
            .into_iter()
            .filter_map(|(name, raw)| {
                let name = CLIENT_FILE_NAMES.into_iter().find(|known| *known == name)?;
                Some((name, ClientFile::new(raw)))
            })
            .collect();
        Self::with_files(files, version.into())
    }

    fn with_files(
        files: HashMap<&'static str, ClientFile>,
        version: String,
    ) -> Result<ClientFiles, ClientFilesError> {
        let etag = format!("\"{version}\"");
        let Ok(etag_value) = HeaderValue::from_str(&etag) else {
            return Err(ClientFilesError::BadVersion(version));
        };
        Ok(ClientFiles {
            weak_etag: format!("W/{etag}"),
            etag: etag_value,
            files,
        })
    }

    /// The name of the client file a request path asks for, if this server has it. As in the
    /// official server, the path must start with the server's path (its trailing slash left
    /// out), and the name is what follows one more character.
    pub(crate) fn file_for(&self, base: &str, path: &str) -> Option<&'static str> {
        let rest = path.strip_prefix(base.trim_end_matches('/'))?;
        let name = rest.as_bytes().get(1..)?;
        self.files
            .keys()
            .copied()
            .find(|known| known.as_bytes() == name)
    }

    /// The answer to a request for the file `name` (one [`file_for`](Self::file_for) returned).
    pub(crate) async fn respond(&self, name: &'static str, request: &HeaderMap) -> Response<Body> {
        let Some(file) = self.files.get(name) else {
            return empty(StatusCode::NOT_FOUND);
        };
        let etag_matches = request.get(header::IF_NONE_MATCH).is_some_and(|value| {
            value.as_bytes() == self.etag.as_bytes()
                || value.as_bytes() == self.weak_etag.as_bytes()
        });
        if etag_matches {
            return empty(StatusCode::NOT_MODIFIED);
        }
        let coding = ContentCoding::for_request(request, &CODINGS);
        let body = match coding {
            None => file.raw.clone(),
            Some(coding) => match self.compressed(name, coding).await {
                Some(body) => body,
                None => return empty(StatusCode::INTERNAL_SERVER_ERROR),
            },
        };
        let mut response = Response::new(Full::new(body));
        let headers = response.headers_mut();
        headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=0"),
        );
        let content_type = if name.ends_with(".map") {
            "application/json; charset=utf-8"
        } else {
            "application/javascript; charset=utf-8"
        };
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        headers.insert(header::ETAG, self.etag.clone());
        if let Some(coding) = coding {
            headers.insert(
                header::CONTENT_ENCODING,
                HeaderValue::from_static(coding.name()),
            );
        }
        response
    }

    /// The file compressed with `coding`: made once, on tokio's blocking pool (Brotli at Node's
    /// level takes about a second per megabyte). `None` only if compressing panicked.
    async fn compressed(&self, name: &'static str, coding: ContentCoding) -> Option<Bytes> {
        let slot = CODINGS.iter().position(|c| *c == coding)?;
        let file = self.files.get(name)?;
        // One request compresses; the others wait without holding a thread. Should that request
        // go away first, the next waiter starts over (the first compression still runs to its end
        // on the blocking pool): at worst a few compressions of one file, never a wrong answer.
        let compressed = file.compressed[slot]
            .get_or_try_init(|| {
                let raw = file.raw.clone();
                async move {
                    tokio::task::spawn_blocking(move || coding.compress(&raw))
                        .await
                        .map_err(|_| CompressionPanicked)
                }
            })
            .await
            .ok()?;
        Some(compressed.clone())
    }
}

/// Compressing a file panicked (the answer is then a 500, and the next request tries again).
struct CompressionPanicked;

impl ClientFile {
    fn new(raw: Bytes) -> Self {
        ClientFile {
            raw,
            compressed: Default::default(),
        }
    }
}

fn empty(status: StatusCode) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use std::io::Read;
    use std::sync::Arc;

    fn files() -> Arc<ClientFiles> {
        let js = Bytes::from(b"/* client */ var io = 1;\n".repeat(100));
        Arc::new(
            ClientFiles::from_memory(
                [
                    ("socket.io.js", js),
                    ("socket.io.js.map", Bytes::from_static(b"{\"version\":3}")),
                    ("other.js", Bytes::from_static(b"no")),
                ],
                "4.8.1",
            )
            .unwrap(),
        )
    }

    fn request(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(*name, HeaderValue::from_static(value));
        }
        headers
    }

    async fn body(response: Response<Body>) -> Bytes {
        response.into_body().collect().await.unwrap().to_bytes()
    }

    #[test]
    fn a_file_is_found_as_the_official_server_finds_it() {
        let files = files();
        assert_eq!(
            files.file_for("/socket.io/", "/socket.io/socket.io.js"),
            Some("socket.io.js")
        );
        assert_eq!(
            files.file_for("/socket.io", "/socket.io/socket.io.js.map"),
            Some("socket.io.js.map")
        );
        // `startsWith(path)` then one character skipped, whatever it is.
        assert_eq!(
            files.file_for("/socket.io/", "/socket.ioXsocket.io.js"),
            Some("socket.io.js")
        );
        assert_eq!(
            files.file_for("/socket.io/", "/socket.io/socket.io.min.js"),
            None
        );
        assert_eq!(files.file_for("/socket.io/", "/socket.io/other.js"), None);
        assert_eq!(files.file_for("/socket.io/", "/socket.io/"), None);
        assert_eq!(files.file_for("/socket.io/", "/socket.io"), None);
        assert_eq!(files.file_for("/socket.io/", "/other/socket.io.js"), None);
        assert_eq!(files.file_for("/socket.io/", "/socket.io/é"), None);
    }

    #[tokio::test]
    async fn a_file_is_sent_with_the_official_headers() {
        let files = files();
        let response = files.respond("socket.io.js", &request(&[])).await;
        assert_eq!(response.status(), StatusCode::OK);
        let headers = response.headers().clone();
        assert_eq!(headers["cache-control"], "public, max-age=0");
        assert_eq!(
            headers["content-type"],
            "application/javascript; charset=utf-8"
        );
        assert_eq!(headers["etag"], "\"4.8.1\"");
        assert!(headers.get("content-encoding").is_none());
        assert_eq!(body(response).await, files.files["socket.io.js"].raw);

        let map = files.respond("socket.io.js.map", &request(&[])).await;
        assert_eq!(
            map.headers()["content-type"],
            "application/json; charset=utf-8"
        );
    }

    #[tokio::test]
    async fn a_matching_etag_strong_or_weak_gets_an_empty_304() {
        let files = files();
        for tag in ["\"4.8.1\"", "W/\"4.8.1\""] {
            let response = files
                .respond("socket.io.js", &request(&[("if-none-match", tag)]))
                .await;
            assert_eq!(response.status(), StatusCode::NOT_MODIFIED, "{tag}");
            assert!(response.headers().get("etag").is_none());
            assert!(body(response).await.is_empty());
        }
        for tag in ["\"4.8.0\"", "4.8.1", "*", "\"4.8.1\", \"x\""] {
            let response = files
                .respond("socket.io.js", &request(&[("if-none-match", tag)]))
                .await;
            assert_eq!(response.status(), StatusCode::OK, "{tag}");
        }
    }

    #[tokio::test]
    async fn each_coding_decompresses_to_the_file() {
        let files = files();
        let raw = files.files["socket.io.js"].raw.clone();
        for (accept, coding) in [
            ("gzip, deflate, br", "gzip"),
            ("deflate, gzip, br", "deflate"),
            ("br", "br"),
            ("*", "br"),
            ("br;q=0, gzip;q=0.5", "gzip"),
        ] {
            // Twice: the second answer comes from the cache.
            for _ in 0..2 {
                let response = files
                    .respond("socket.io.js", &request(&[("accept-encoding", accept)]))
                    .await;
                assert_eq!(response.headers()["content-encoding"], coding, "{accept}");
                let compressed = body(response).await;
                assert!(compressed.len() < raw.len());
                let mut out = Vec::new();
                match coding {
                    "gzip" => flate2::read::GzDecoder::new(&compressed[..])
                        .read_to_end(&mut out)
                        .unwrap(),
                    "deflate" => flate2::read::ZlibDecoder::new(&compressed[..])
                        .read_to_end(&mut out)
                        .unwrap(),
                    _ => brotli::Decompressor::new(&compressed[..], 4096)
                        .read_to_end(&mut out)
                        .unwrap(),
                };
                assert_eq!(out, raw, "{accept}");
            }
        }
        let plain = files
            .respond(
                "socket.io.js",
                &request(&[("accept-encoding", "identity, zstd")]),
            )
            .await;
        assert!(plain.headers().get("content-encoding").is_none());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_first_requests_share_one_compression() {
        let files = files();
        let answers = (0..16).map(|_| {
            let files = files.clone();
            tokio::spawn(async move {
                let headers = request(&[("accept-encoding", "br")]);
                body(files.respond("socket.io.js", &headers).await).await
            })
        });
        let mut bodies = Vec::new();
        for answer in answers {
            bodies.push(answer.await.unwrap());
        }
        let cached = files.files["socket.io.js"].compressed[0].get().unwrap();
        // Every answer is the one cached output, not a copy compressed again.
        assert!(bodies.iter().all(|b| b.as_ptr() == cached.as_ptr()));
    }

    #[test]
    fn a_folder_without_client_files_and_an_unsendable_version_are_refused() {
        let dir = std::env::temp_dir().join(format!("sio-client-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(matches!(
            ClientFiles::from_dir(&dir, "1.0.0"),
            Err(ClientFilesError::NoFiles(_))
        ));
        std::fs::write(dir.join("socket.io.min.js"), b"x").unwrap();
        let files = ClientFiles::from_dir(&dir, "1.0.0").unwrap();
        assert_eq!(
            files.file_for("/socket.io", "/socket.io/socket.io.min.js"),
            Some("socket.io.min.js")
        );
        assert_eq!(
            files.file_for("/socket.io", "/socket.io/socket.io.js"),
            None
        );
        assert!(matches!(
            ClientFiles::from_dir(&dir, "1.0\n"),
            Err(ClientFilesError::BadVersion(_))
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
