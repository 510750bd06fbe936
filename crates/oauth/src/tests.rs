//! The authorization server against a real (in-memory) store: the code flow with PKCE, code
//! reuse, refresh rotation and family revocation, client credentials, audiences, revocation,
//! redirect matching, scopes, and the address checks of metadata documents.

use std::net::IpAddr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use skyport_identity::Keypair;
use skyport_store::{MasterKey, NewPrincipal, PrincipalKind, Store};

use crate::authorize::granted_scope;
use crate::cimd::is_public;
use crate::*;

const ISSUER: &str = "http://127.0.0.1:8420";
const NOTES: &str = "http://127.0.0.1:8420/servers/notes/mcp";
const REDIRECT: &str = "http://127.0.0.1:43117/callback";
const VERIFIER: &str = "a-verifier-of-enough-length-0123456789-abcdefghijklmnop";

fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

struct Check {
    store: Store,
    server: AuthorizationServer,
}

async fn check() -> Check {
    let store = Store::open_in_memory()
        .await
        .unwrap()
        .with_master_key(MasterKey::generate());
    for name in ["notes", "other"] {
        store
            .servers()
            .ensure(&name.parse().unwrap(), None)
            .await
            .unwrap();
    }
    store
        .users()
        .create(
            &NewPrincipal {
                name: "ada",
                email: None,
                kind: PrincipalKind::User,
                is_admin: false,
            },
            Some("correct horse battery"),
        )
        .await
        .unwrap();
    let server = AuthorizationServer::new(store.clone(), OAuthConfig::new(ISSUER))
        .await
        .unwrap();
    Check { store, server }
}

impl Check {
    async fn public_client(&self) -> String {
        self.server
            .register(&ClientRegistration {
                redirect_uris: vec!["http://127.0.0.1/callback".to_owned()],
                client_name: Some("Test client".to_owned()),
                token_endpoint_auth_method: Some("none".to_owned()),
                ..ClientRegistration::default()
            })
            .await
            .unwrap()
            .client_id
    }

    fn request(&self, client_id: &str) -> AuthorizationRequest {
        AuthorizationRequest {
            response_type: Some("code".to_owned()),
            client_id: Some(client_id.to_owned()),
            redirect_uri: Some(REDIRECT.to_owned()),
            code_challenge: Some(challenge(VERIFIER)),
            code_challenge_method: Some("S256".to_owned()),
            state: Some("st".to_owned()),
            scope: None,
            resource: Some(NOTES.to_owned()),
        }
    }

    /// Runs the authorization steps for `request` and returns the code from the redirect.
    async fn code(&self, request: &AuthorizationRequest) -> String {
        let client = self.server.check_client(request).await.unwrap();
        let authorization = self.server.check_request(request, client).await.unwrap();
        let user = self
            .server
            .login("ada", "correct horse battery", IpAddr::from([127, 0, 0, 1]))
            .await
            .unwrap();
        let ticket = self.server.await_consent(user, authorization);
        let redirect = self
            .server
            .answer_consent(&ticket, true)
            .await
            .unwrap()
            .unwrap();
        assert!(redirect.starts_with(REDIRECT), "{redirect}");
        assert!(redirect.contains("state=st"), "{redirect}");
        let url = reqwest::Url::parse(&redirect).unwrap();
        url.query_pairs()
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v.into_owned())
            .unwrap()
    }

    fn exchange(&self, client_id: &str, code: &str, verifier: &str) -> TokenRequest {
        TokenRequest {
            grant_type: Some("authorization_code".to_owned()),
            code: Some(code.to_owned()),
            redirect_uri: Some(REDIRECT.to_owned()),
            code_verifier: Some(verifier.to_owned()),
            client_id: Some(client_id.to_owned()),
            resource: Some(NOTES.to_owned()),
            ..TokenRequest::default()
        }
    }

    fn refresh(&self, client_id: &str, token: &str) -> TokenRequest {
        TokenRequest {
            grant_type: Some("refresh_token".to_owned()),
            refresh_token: Some(token.to_owned()),
            client_id: Some(client_id.to_owned()),
            ..TokenRequest::default()
        }
    }

    async fn verify(&self, token: &str, audience: &str) -> Result<AccessClaims, AccessTokenError> {
        let key = self.store.signing_keys().current().await.unwrap().unwrap();
        let key = Keypair::from_secret(&key.0.kid, key.1.as_bytes()).unwrap();
        verify_access_token(token, &[key.public()], ISSUER, audience, unix_now())
    }
}

#[tokio::test]
async fn the_code_flow_issues_a_token_for_the_one_server_asked_for() {
    let c = check().await;
    let client = c.public_client().await;
    let code = c.code(&c.request(&client)).await;
    let tokens = c
        .server
        .token(&c.exchange(&client, &code, VERIFIER), None)
        .await
        .unwrap();
    assert_eq!(tokens.token_type, "Bearer");
    assert_eq!(tokens.scope, "mcp");
    assert!(tokens.refresh_token.is_some());
    let claims = c.verify(&tokens.access_token, NOTES).await.unwrap();
    assert_eq!(claims.client_id, client);
    assert_eq!(
        c.verify(
            &tokens.access_token,
            "http://127.0.0.1:8420/servers/other/mcp"
        )
        .await,
        Err(AccessTokenError::Audience(NOTES.to_owned()))
    );
    // The code is spent.
    let again = c
        .server
        .token(&c.exchange(&client, &code, VERIFIER), None)
        .await
        .unwrap_err();
    assert_eq!(again.code(), "invalid_grant");
}

#[tokio::test]
async fn a_wrong_verifier_gets_no_token_and_spends_the_code() {
    let c = check().await;
    let client = c.public_client().await;
    let code = c.code(&c.request(&client)).await;
    let other = "another-verifier-of-enough-length-0123456789-abcdefghij";
    let wrong = c
        .server
        .token(&c.exchange(&client, &code, other), None)
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), "invalid_grant");
    let right = c
        .server
        .token(&c.exchange(&client, &code, VERIFIER), None)
        .await
        .unwrap_err();
    assert_eq!(right.code(), "invalid_grant");
}

#[tokio::test]
async fn a_code_must_come_back_with_its_redirect_uri_and_client() {
    let c = check().await;
    let client = c.public_client().await;
    let code = c.code(&c.request(&client)).await;
    let mut moved = c.exchange(&client, &code, VERIFIER);
    moved.redirect_uri = Some("http://127.0.0.1:9/callback".to_owned());
    assert_eq!(
        c.server.token(&moved, None).await.unwrap_err().code(),
        "invalid_grant"
    );
    let other = c.public_client().await;
    let code = c.code(&c.request(&client)).await;
    assert_eq!(
        c.server
            .token(&c.exchange(&other, &code, VERIFIER), None)
            .await
            .unwrap_err()
            .code(),
        "invalid_grant"
    );
}

#[tokio::test]
async fn reusing_a_refresh_token_revokes_its_family() {
    let c = check().await;
    let client = c.public_client().await;
    let code = c.code(&c.request(&client)).await;
    let first = c
        .server
        .token(&c.exchange(&client, &code, VERIFIER), None)
        .await
        .unwrap()
        .refresh_token
        .unwrap();
    let second = c
        .server
        .token(&c.refresh(&client, &first), None)
        .await
        .unwrap()
        .refresh_token
        .unwrap();
    assert_ne!(first, second);
    let reused = c
        .server
        .token(&c.refresh(&client, &first), None)
        .await
        .unwrap_err();
    assert_eq!(reused.code(), "invalid_grant");
    let newer = c
        .server
        .token(&c.refresh(&client, &second), None)
        .await
        .unwrap_err();
    assert_eq!(newer.code(), "invalid_grant");
}

#[tokio::test]
async fn errors_before_the_redirect_uri_is_checked_are_not_redirectable() {
    let c = check().await;
    let client = c.public_client().await;
    let mut request = c.request(&client);
    request.redirect_uri = Some("https://evil.example/steal".to_owned());
    assert_eq!(
        c.server.check_client(&request).await.unwrap_err().code(),
        "invalid_request"
    );
    request.client_id = Some("oac_unknown".to_owned());
    assert_eq!(
        c.server.check_client(&request).await.unwrap_err().code(),
        "invalid_client"
    );
}

/// A change to an authorization request.
type Change = fn(&mut AuthorizationRequest);

#[tokio::test]
async fn the_request_is_checked_after_the_client() {
    let c = check().await;
    let client = c.public_client().await;
    let cases: [(Change, &str); 5] = [
        (
            |r| r.code_challenge_method = Some("plain".to_owned()),
            "invalid_request",
        ),
        (|r| r.code_challenge = None, "invalid_request"),
        (
            |r| r.response_type = Some("token".to_owned()),
            "unsupported_response_type",
        ),
        (|r| r.scope = Some("admin".to_owned()), "invalid_scope"),
        (
            |r| r.resource = Some("https://elsewhere.example/mcp".to_owned()),
            "invalid_target",
        ),
    ];
    for (change, code) in cases {
        let mut request = c.request(&client);
        change(&mut request);
        let checked = c.server.check_client(&request).await.unwrap();
        let error = c
            .server
            .check_request(&request, checked.clone())
            .await
            .unwrap_err();
        assert_eq!(error.code(), code, "{error}");
        let back = c.server.error_redirect(&checked, &error);
        assert!(back.starts_with(REDIRECT) && back.contains(code), "{back}");
    }
    let mut unknown_server = c.request(&client);
    unknown_server.resource = Some("http://127.0.0.1:8420/servers/nope/mcp".to_owned());
    let checked = c.server.check_client(&unknown_server).await.unwrap();
    assert_eq!(
        c.server
            .check_request(&unknown_server, checked)
            .await
            .unwrap_err()
            .code(),
        "invalid_target"
    );
}

#[tokio::test]
async fn client_credentials_act_as_the_service_account() {
    let c = check().await;
    let account = c
        .store
        .users()
        .create(
            &NewPrincipal {
                name: "ci",
                email: None,
                kind: PrincipalKind::Service,
                is_admin: false,
            },
            None,
        )
        .await
        .unwrap();
    let made = c
        .server
        .create_service_client(&account, "ci")
        .await
        .unwrap();
    let request = TokenRequest {
        grant_type: Some("client_credentials".to_owned()),
        resource: Some(NOTES.to_owned()),
        ..TokenRequest::default()
    };
    let basic = |secret: &str| {
        Some(ClientSecret {
            id: made.client.id.clone(),
            secret: secret.to_owned(),
        })
    };
    let tokens = c.server.token(&request, basic(&made.secret)).await.unwrap();
    assert!(tokens.refresh_token.is_none());
    let claims = c.verify(&tokens.access_token, NOTES).await.unwrap();
    assert_eq!(claims.sub, account.id.as_str());
    assert_eq!(
        c.server
            .token(&request, basic("wrong"))
            .await
            .unwrap_err()
            .code(),
        "invalid_client"
    );
    // A public client cannot use the grant.
    let public = c.public_client().await;
    let mut by_public = request.clone();
    by_public.client_id = Some(public);
    assert_eq!(
        c.server.token(&by_public, None).await.unwrap_err().code(),
        "unauthorized_client"
    );
    let user = c.store.users().get("ada").await.unwrap().unwrap();
    assert!(c.server.create_service_client(&user, "no").await.is_err());
}

#[tokio::test]
async fn revoking_a_refresh_token_stops_its_family() {
    let c = check().await;
    let client = c.public_client().await;
    let code = c.code(&c.request(&client)).await;
    let tokens = c
        .server
        .token(&c.exchange(&client, &code, VERIFIER), None)
        .await
        .unwrap();
    let refresh = tokens.refresh_token.unwrap();
    let revoke = TokenRequest {
        token: Some(refresh.clone()),
        client_id: Some(client.clone()),
        ..TokenRequest::default()
    };
    c.server.revoke(&revoke, None).await.unwrap();
    assert!(
        c.server
            .token(&c.refresh(&client, &refresh), None)
            .await
            .is_err()
    );
    let mut changes = c.store.subscribe();
    let revoke_access = TokenRequest {
        token: Some(tokens.access_token.clone()),
        client_id: Some(client.clone()),
        ..TokenRequest::default()
    };
    c.server.revoke(&revoke_access, None).await.unwrap();
    assert_eq!(
        changes.recv().await.unwrap(),
        skyport_store::Change::TokensRevoked
    );
    let jti = c.verify(&tokens.access_token, NOTES).await.unwrap().jti;
    let revoked = c
        .store
        .oauth()
        .revoked_access_tokens(skyport_store::Timestamp::now())
        .await
        .unwrap();
    assert_eq!(revoked, [jti]);
}

#[tokio::test]
async fn logins_are_throttled_per_user_and_address() {
    let c = check().await;
    let here = IpAddr::from([10, 0, 0, 1]);
    let elsewhere = IpAddr::from([10, 0, 0, 2]);
    for _ in 0..MAX_FAILURES {
        assert!(matches!(
            c.server.login("ada", "wrong", here).await,
            Err(LoginError::Wrong)
        ));
    }
    assert!(matches!(
        c.server.login("ada", "correct horse battery", here).await,
        Err(LoginError::Throttled { .. })
    ));
    assert!(
        c.server
            .login("ada", "correct horse battery", elsewhere)
            .await
            .is_ok()
    );
}

#[test]
fn redirect_uris_match_exactly_except_loopback_ports() {
    let registered = [
        "http://127.0.0.1/callback".to_owned(),
        "http://localhost:3000/cb".to_owned(),
        "https://app.example/cb".to_owned(),
    ];
    for ok in [
        "http://127.0.0.1:5555/callback",
        "http://127.0.0.1/callback",
        "http://localhost:9999/cb",
        "https://app.example/cb",
    ] {
        assert!(redirect_allowed(&registered, ok), "{ok}");
    }
    for bad in [
        "http://127.0.0.1:5555/other",
        "http://127.0.0.2:5555/callback",
        "https://app.example/cb/",
        "https://app.example:444/cb",
        "http://localhost.evil.example:3000/cb",
        "http://127.0.0.1:5555@evil.example/callback",
    ] {
        assert!(!redirect_allowed(&registered, bad), "{bad}");
    }
    assert!(redirect_allowed(
        &["http://[::1]/cb".to_owned()],
        "http://[::1]:8000/cb"
    ));
}

#[test]
fn only_usable_redirect_uris_register() {
    assert!(registrable("https://app.example/cb"));
    assert!(registrable("http://localhost:1234/callback"));
    assert!(registrable("com.example.app:/oauth"));
    assert!(!registrable("http://app.example/cb"));
    assert!(!registrable("https://app.example/cb#frag"));
    assert!(!registrable("javascript:alert(1)"));
}

#[test]
fn pkce_is_s256_only() {
    let c = challenge(VERIFIER);
    assert!(CodeChallenge::parse(Some(&c), Some("plain")).is_err());
    assert!(CodeChallenge::parse(Some(&c), None).is_err());
    assert!(CodeChallenge::parse(Some("short"), Some("S256")).is_err());
    let parsed = CodeChallenge::parse(Some(&c), Some("S256")).unwrap();
    assert!(parsed.accepts(VERIFIER));
    assert!(!parsed.accepts("x"));
    assert!(!parsed.accepts(&format!("{VERIFIER}x")));
}

#[test]
fn scopes_are_the_offered_ones() {
    assert_eq!(granted_scope(None).unwrap(), "mcp");
    assert_eq!(
        granted_scope(Some("mcp offline_access")).unwrap(),
        "mcp offline_access"
    );
    assert_eq!(
        granted_scope(Some("mcp root")).unwrap_err().code(),
        "invalid_scope"
    );
}

#[test]
fn documents_on_private_addresses_are_recognised() {
    for private in [
        "127.0.0.1",
        "10.1.2.3",
        "192.168.0.1",
        "169.254.169.254",
        "::1",
        "fd00::1",
        "fe80::1",
        "::ffff:127.0.0.1",
        "100.64.0.1",
    ] {
        assert!(!is_public(private.parse().unwrap()), "{private}");
    }
    for public in ["93.184.216.34", "2606:4700::1111"] {
        assert!(is_public(public.parse().unwrap()), "{public}");
    }
}

#[tokio::test]
async fn a_document_on_a_private_address_is_not_fetched() {
    let documents = crate::cimd::Documents::new(false);
    // Nothing listens there: the refusal comes before any connection.
    let error = documents
        .client("https://127.0.0.1:9/client.json")
        .await
        .unwrap_err();
    assert_eq!(error.code(), "invalid_client");
    assert!(error.to_string().contains("private"), "{error}");
    let error = documents
        .client("http://app.example/client.json")
        .await
        .unwrap_err();
    assert!(error.to_string().contains("https"), "{error}");
}
