//! Who is calling: what authentication established about a request, handed to the proxy in the
//! request's extensions and to servers as `skyport-*` headers.

use std::sync::Arc;

use skyport_store::{ApiKeyId, PrincipalId};

/// The authenticated caller of a gateway request. Once authentication has routed it, `roles`
/// holds the caller's one effective role on the routed server (`admin`, `editor` or
/// `viewer`), which is what `skyport-roles` carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The principal the credential acts as.
    pub principal: PrincipalId,
    /// The principal's name.
    pub name: String,
    /// Its e-mail address, when known.
    pub email: Option<String>,
    /// Its roles (e.g. `admin`).
    pub roles: Vec<String>,
    /// The groups the principal belongs to, by name.
    pub groups: Arc<[String]>,
    /// The API key used, when the credential was one (rate limits are per key).
    pub key: Option<ApiKeyId>,
}
