//! Redirect URI matching: exact string comparison (OAuth 2.1 §4.1.1), except that a loopback
//! redirect may use any port (RFC 8252 §7.3: native apps listen on an ephemeral port).

/// Whether `presented` is one of `registered`.
pub fn redirect_allowed(registered: &[String], presented: &str) -> bool {
    registered
        .iter()
        .any(|r| r == presented || same_loopback_except_port(r, presented))
}

/// Whether two `http` loopback URLs differ at most in their port.
fn same_loopback_except_port(registered: &str, presented: &str) -> bool {
    match (loopback_parts(registered), loopback_parts(presented)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// `(host, rest)` of `http://HOST[:PORT]REST` when HOST is a loopback name; `None` otherwise.
fn loopback_parts(url: &str) -> Option<(&str, &str)> {
    let after = url.strip_prefix("http://")?;
    let (authority, rest) = match after.find(['/', '?', '#']) {
        Some(i) => after.split_at(i),
        None => (after, ""),
    };
    let host = if let Some(v6) = authority.strip_prefix('[') {
        let end = v6.find(']')?;
        let port = &v6[end + 1..];
        if !(port.is_empty() || port.strip_prefix(':').is_some_and(is_port)) {
            return None;
        }
        &authority[..end + 2]
    } else {
        match authority.split_once(':') {
            Some((host, port)) if is_port(port) => host,
            Some(_) => return None,
            None => authority,
        }
    };
    matches!(host, "127.0.0.1" | "localhost" | "[::1]").then_some((host, rest))
}

fn is_port(text: &str) -> bool {
    !text.is_empty() && text.len() <= 5 && text.bytes().all(|b| b.is_ascii_digit())
}

/// Whether `uri` may be registered: an absolute `https` URL, or `http` on a loopback host,
/// without a fragment (OAuth 2.1 §2.3.1); private-use schemes of native apps (`com.example:/`)
/// are allowed too.
pub fn registrable(uri: &str) -> bool {
    if uri.contains('#') || uri.chars().any(char::is_whitespace) {
        return false;
    }
    if let Some(rest) = uri.strip_prefix("https://") {
        return !rest.is_empty() && !rest.starts_with('/');
    }
    if uri.starts_with("http://") {
        return loopback_parts(uri).is_some();
    }
    // A private-use scheme: `reverse.domain:/path`, with a dot so it is no well-known scheme.
    uri.split_once(':').is_some_and(|(scheme, _)| {
        scheme.contains('.')
            && scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
    })
}
