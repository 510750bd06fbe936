//! Client ID Metadata Documents: a `client_id` that is an `https` URL names a JSON document the
//! client publishes (its name and redirect URIs). The document is fetched with a size and a time
//! limit, cached, and its own `client_id` must be the URL.
//!
//! Fetching a URL a stranger chose is a server-side request forgery risk: addresses that are
//! loopback, private or link-local are refused (every address the name resolves to), and so
//! are redirects, unless the operator allows private documents (`--oauth-allow-private-cimd`,
//! which also allows plain `http`, for tests and closed networks). A name could resolve
//! differently between the check and the fetch (DNS rebinding); the fetch is pinned to the
//! checked addresses to close that gap.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use reqwest::Url;
use serde::Deserialize;

use crate::{ClientInfo, OAuthError};

/// The largest document accepted.
pub const MAX_DOCUMENT: usize = 5 * 1024;
/// How long a fetch may take, connection included.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a fetched document is used before it is fetched again.
const CACHE_FOR: Duration = Duration::from_secs(300);

/// Fetches and caches client metadata documents.
pub(crate) struct Documents {
    allow_private: bool,
    cache: Mutex<HashMap<String, (Instant, ClientInfo)>>,
}

#[derive(Deserialize)]
struct Document {
    client_id: String,
    #[serde(default)]
    client_name: Option<String>,
    #[serde(default)]
    redirect_uris: Vec<String>,
    #[serde(default)]
    token_endpoint_auth_method: Option<String>,
}

/// Whether `client_id` names a metadata document rather than a registered client.
pub(crate) fn is_document_url(client_id: &str) -> bool {
    client_id.starts_with("https://") || client_id.starts_with("http://")
}

impl Documents {
    pub(crate) fn new(allow_private: bool) -> Documents {
        Documents {
            allow_private,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The client the document at `url` describes.
    pub(crate) async fn client(&self, url: &str) -> Result<ClientInfo, OAuthError> {
        if let Some((at, client)) = self.cache.lock().get(url)
            && at.elapsed() < CACHE_FOR
        {
            return Ok(client.clone());
        }
        let client = self.fetch(url).await?;
        let mut cache = self.cache.lock();
        if cache.len() > 1000 {
            cache.retain(|_, (at, _)| at.elapsed() < CACHE_FOR);
        }
        cache.insert(url.to_owned(), (Instant::now(), client.clone()));
        Ok(client)
    }

    async fn fetch(&self, url: &str) -> Result<ClientInfo, OAuthError> {
        let refused = |why: String| {
            OAuthError::InvalidClient(format!("client metadata document {url}: {why}"))
        };
        let parsed = Url::parse(url).map_err(|e| refused(format!("not a URL ({e})")))?;
        match parsed.scheme() {
            "https" => {}
            "http" if self.allow_private => {}
            _ => return Err(refused("must be an https URL".to_owned())),
        }
        if parsed.path() == "/" || parsed.fragment().is_some() || !parsed.username().is_empty() {
            return Err(refused(
                "must have a path and no fragment or credentials".to_owned(),
            ));
        }
        let host = parsed
            .host_str()
            .ok_or_else(|| refused("has no host".to_owned()))?
            .to_owned();
        let port = parsed.port_or_known_default().unwrap_or(443);
        let addrs: Vec<SocketAddr> = tokio::time::timeout(
            FETCH_TIMEOUT,
            tokio::net::lookup_host((host.trim_matches(['[', ']']), port)),
        )
        .await
        .map_err(|_| refused("its host did not resolve in time".to_owned()))?
        .map_err(|e| refused(format!("its host does not resolve ({e})")))?
        .collect();
        if addrs.is_empty() {
            return Err(refused("its host has no address".to_owned()));
        }
        if !self.allow_private && addrs.iter().any(|a| !is_public(a.ip())) {
            return Err(refused(
                "it is on a private, loopback or link-local address, which Skyport does not fetch (start it with --oauth-allow-private-cimd to allow)".to_owned(),
            ));
        }
        let http = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .resolve_to_addrs(&host, &addrs)
            .build()
            .map_err(|e| refused(format!("cannot fetch ({e})")))?;
        let body = tokio::time::timeout(FETCH_TIMEOUT, read_limited(http, parsed))
            .await
            .map_err(|_| refused(format!("no answer within {}s", FETCH_TIMEOUT.as_secs())))?
            .map_err(refused)?;
        let document: Document = serde_json::from_slice(&body)
            .map_err(|e| refused(format!("not a client metadata JSON document ({e})")))?;
        if document.client_id != url {
            return Err(refused(format!(
                "its client_id is {}, not the document's URL",
                document.client_id
            )));
        }
        if document
            .token_endpoint_auth_method
            .as_deref()
            .is_some_and(|m| m != "none")
        {
            return Err(refused(
                "only public clients (token_endpoint_auth_method none) may use a metadata document"
                    .to_owned(),
            ));
        }
        if document.redirect_uris.is_empty() {
            return Err(refused("lists no redirect_uris".to_owned()));
        }
        Ok(ClientInfo {
            id: url.to_owned(),
            name: document.client_name.unwrap_or_else(|| host.clone()),
            redirect_uris: document.redirect_uris,
            confidential: false,
            principal: None,
        })
    }
}

/// The body of `url`, refused past [`MAX_DOCUMENT`] bytes (read as it streams, so a huge
/// document costs at most that much).
async fn read_limited(http: reqwest::Client, url: Url) -> Result<Vec<u8>, String> {
    let mut response = http
        .get(url)
        .header("accept", "application/json")
        .send()
        .await
        .map_err(fetch_error)?;
    if !response.status().is_success() {
        return Err(format!("answered {}", response.status()));
    }
    let too_large = || format!("larger than {MAX_DOCUMENT} bytes");
    if response
        .content_length()
        .is_some_and(|n| n > MAX_DOCUMENT as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(fetch_error)? {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_DOCUMENT {
            return Err(too_large());
        }
    }
    Ok(body)
}

fn fetch_error(e: reqwest::Error) -> String {
    if e.is_timeout() {
        format!("no answer within {}s", FETCH_TIMEOUT.as_secs())
    } else {
        format!("cannot fetch ({e})")
    }
}

/// Whether `ip` is a public unicast address: the only kind Skyport reaches for what a user
/// names (client metadata documents here, external servers in `web`) unless the operator
/// allows private ones.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_multicast()
                // 100.64.0.0/10, carrier-grade NAT.
                || (v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                // fc00::/7 unique local, fe80::/10 link-local.
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80)
        }
    }
}
