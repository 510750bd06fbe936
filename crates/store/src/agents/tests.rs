//! Providers, agents and conversations on both databases: keys sealed and never listed, one
//! default provider, a provider in use kept, agents' servers and access checked, conversations
//! per owner and subject.

use std::time::Duration;

use crate::*;

async fn store() -> Store {
    crate::testdb::store()
        .await
        .unwrap()
        .with_master_key(MasterKey::generate())
}

fn provider(name: &str, key: Option<&str>, is_default: bool) -> NewProvider {
    NewProvider {
        name: name.parse().unwrap(),
        kind: ProviderKind::OpenAi,
        base_url: "http://127.0.0.1:9/v1".to_owned(),
        api_key: key.map(str::to_owned),
        default_model: Some("small".to_owned()),
        timeout: Duration::from_secs(60),
        retries: 2,
        is_default,
    }
}

fn agent(name: &str, provider: &str, servers: &[&str]) -> NewAgent {
    NewAgent {
        name: name.parse().unwrap(),
        description: "helps".to_owned(),
        instructions: "be brief".to_owned(),
        provider: provider.parse().unwrap(),
        model: None,
        step_limit: DEFAULT_STEP_LIMIT,
        servers: servers.iter().map(|s| s.parse().unwrap()).collect(),
        allowed: Vec::new(),
        created_by: None,
    }
}

async fn server(store: &Store, name: &str) -> ServerId {
    store
        .servers()
        .ensure(&name.parse().unwrap(), None)
        .await
        .unwrap()
        .0
        .id
}

async fn principal(store: &Store, name: &str) -> PrincipalId {
    let new = NewPrincipal {
        name,
        email: None,
        kind: PrincipalKind::User,
        is_admin: false,
    };
    store.users().create(&new, None).await.unwrap();
    store.users().get(name).await.unwrap().unwrap().id
}

async fn provider_keys_are_sealed_and_opened_only_for_connections() {
    let store = store().await;
    let created = store
        .providers()
        .create(&provider("openai", Some("sk-s3cret"), false))
        .await
        .unwrap();
    assert!(created.has_api_key);
    assert_eq!(created.timeout, Duration::from_secs(60));
    assert!(!format!("{created:?}").contains("s3cret"));
    let sealed: Vec<u8> = crate::sql::query_scalar("SELECT api_key FROM providers")
        .fetch_one(&store.pool)
        .await
        .unwrap();
    assert!(!String::from_utf8_lossy(&sealed).contains("s3cret"));

    let name: ProviderName = "openai".parse().unwrap();
    let connection = store.providers().connection(&name).await.unwrap().unwrap();
    assert_eq!(connection.api_key.as_deref(), Some("sk-s3cret"));
    assert_eq!(connection.default_model.as_deref(), Some("small"));
    assert!(!format!("{connection:?}").contains("s3cret"));

    // A sealed key copied to another provider does not open there.
    store
        .providers()
        .create(&provider("local", None, false))
        .await
        .unwrap();
    crate::sql::query("UPDATE providers SET api_key = ? WHERE name = 'local'")
        .bind(sealed)
        .execute(&store.pool)
        .await
        .unwrap();
    let local: ProviderName = "local".parse().unwrap();
    assert!(matches!(
        store.providers().connection(&local).await,
        Err(StoreError::Sealed(_))
    ));

    // A patch replaces the key, removes it, and leaves what it does not name.
    let patch = ProviderPatch {
        api_key: Some(None),
        timeout: Some(Duration::from_secs(5)),
        ..ProviderPatch::default()
    };
    let changed = store.providers().update(&local, &patch).await.unwrap();
    assert!(!changed.has_api_key);
    assert_eq!(changed.timeout, Duration::from_secs(5));
    assert_eq!(changed.default_model.as_deref(), Some("small"));
    let patch = ProviderPatch {
        api_key: Some(Some("new-key".to_owned())),
        ..ProviderPatch::default()
    };
    store.providers().update(&local, &patch).await.unwrap();
    let opened = store.providers().connection(&local).await.unwrap().unwrap();
    assert_eq!(opened.api_key.as_deref(), Some("new-key"));
    assert_eq!(opened.timeout, Duration::from_secs(5));
}

async fn one_provider_is_the_default_and_limits_hold() {
    let store = store().await;
    assert_eq!(store.providers().default_connection().await.unwrap(), None);
    store
        .providers()
        .create(&provider("first", None, true))
        .await
        .unwrap();
    store
        .providers()
        .create(&provider("second", None, true))
        .await
        .unwrap();
    let default = store
        .providers()
        .default_connection()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(default.name.as_str(), "second");
    let first: ProviderName = "first".parse().unwrap();
    let patch = ProviderPatch {
        is_default: Some(true),
        ..ProviderPatch::default()
    };
    store.providers().update(&first, &patch).await.unwrap();
    let listed = store.providers().list().await.unwrap();
    let defaults: Vec<&str> = listed
        .iter()
        .filter(|p| p.is_default)
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(defaults, ["first"]);

    assert!(matches!(
        store
            .providers()
            .create(&provider("first", None, false))
            .await,
        Err(ProviderError::Exists(_))
    ));
    let mut slow = provider("slow", None, false);
    slow.timeout = Duration::ZERO;
    assert!(matches!(
        store.providers().create(&slow).await,
        Err(ProviderError::BadTimeout(_))
    ));
    let patch = ProviderPatch {
        retries: Some(MAX_PROVIDER_RETRIES + 1),
        ..ProviderPatch::default()
    };
    assert!(matches!(
        store.providers().update(&first, &patch).await,
        Err(ProviderError::TooManyRetries(_))
    ));
    let nobody: ProviderName = "nobody".parse().unwrap();
    assert!(matches!(
        store.providers().remove(&nobody).await,
        Err(ProviderError::NotFound(_))
    ));
    assert!("Bad_Name".parse::<ProviderName>().is_err());
}

async fn agents_are_stored_with_servers_in_order_and_access() {
    let store = store().await;
    store
        .providers()
        .create(&provider("openai", None, true))
        .await
        .unwrap();
    server(&store, "notes").await;
    server(&store, "weather").await;
    let ann = principal(&store, "ann").await;
    store.users().create_group("ops").await.unwrap();

    let mut new = agent("helper", "openai", &["weather", "notes"]);
    new.allowed = vec![
        ChatPrincipal::parse("group:ops"),
        ChatPrincipal::parse("ann"),
    ];
    new.created_by = Some(ann);
    let created = store.agents().create(&new).await.unwrap();
    assert_eq!(created.provider.as_str(), "openai");
    assert_eq!(created.model, None);
    assert_eq!(created.step_limit, DEFAULT_STEP_LIMIT);
    let servers: Vec<&str> = created.servers.iter().map(ServerName::as_str).collect();
    assert_eq!(servers, ["weather", "notes"]);
    assert_eq!(
        created.allowed,
        [
            ChatPrincipal::Principal("ann".into()),
            ChatPrincipal::Group("ops".into())
        ]
    );
    assert_eq!(created.created_by.as_deref(), Some("ann"));
    assert_eq!(
        store.agents().name_of(&created.id).await.unwrap(),
        Some(created.name.clone())
    );
    // A listing gives each agent its own servers and access list.
    let mut other = agent("other", "openai", &["notes", "weather"]);
    other.allowed = vec![ChatPrincipal::parse("group:ops")];
    let other = store.agents().create(&other).await.unwrap();
    assert_eq!(
        store.agents().list().await.unwrap(),
        [created.clone(), other.clone()]
    );
    assert!(store.agents().remove(&other.name).await.unwrap());

    let name: AgentName = "helper".parse().unwrap();
    let patch = AgentPatch {
        model: Some(Some("large".to_owned())),
        servers: Some(vec!["notes".parse().unwrap()]),
        allowed: Some(Vec::new()),
        step_limit: Some(MAX_STEP_LIMIT),
        ..AgentPatch::default()
    };
    let changed = store.agents().update(&name, &patch).await.unwrap();
    assert_eq!(changed.model.as_deref(), Some("large"));
    assert_eq!(changed.servers, ["notes".parse::<ServerName>().unwrap()]);
    assert!(changed.allowed.is_empty());
    assert_eq!(changed.step_limit, MAX_STEP_LIMIT);
    assert_eq!(changed.description, "helps");
    assert_eq!(store.agents().list().await.unwrap(), [changed]);

    // A removed server leaves the agent.
    store
        .servers()
        .remove(&"notes".parse().unwrap())
        .await
        .unwrap();
    let found = store.agents().find(&name).await.unwrap().unwrap();
    assert!(found.servers.is_empty());

    assert!(store.agents().remove(&name).await.unwrap());
    assert!(!store.agents().remove(&name).await.unwrap());
    assert_eq!(store.agents().find(&name).await.unwrap(), None);
    assert_eq!(store.agents().name_of(&found.id).await.unwrap(), None);
}

async fn agents_refuse_what_does_not_exist_or_fit() {
    let store = store().await;
    store
        .providers()
        .create(&provider("openai", None, false))
        .await
        .unwrap();
    server(&store, "notes").await;
    let refused = |new: NewAgent| {
        let store = store.clone();
        async move { store.agents().create(&new).await.unwrap_err() }
    };
    assert!(matches!(
        refused(agent("a", "other", &["notes"])).await,
        AgentError::UnknownProvider(_)
    ));
    let error = refused(agent("a", "openai", &["missing"])).await;
    assert_eq!(
        error.to_string(),
        "no server named 'missing' to take tools from; `skyport servers ls` lists them"
    );
    assert!(matches!(
        refused(agent("a", "openai", &["notes", "notes"])).await,
        AgentError::DuplicateServer(_)
    ));
    assert!(matches!(
        refused(agent("a", "openai", &[])).await,
        AgentError::ServerCount(0)
    ));
    let mut unbounded = agent("a", "openai", &["notes"]);
    unbounded.step_limit = 0;
    assert!(matches!(refused(unbounded).await, AgentError::StepLimit(0)));
    let mut stranger = agent("a", "openai", &["notes"]);
    stranger.allowed = vec![ChatPrincipal::parse("group:nobody")];
    assert_eq!(
        refused(stranger).await.to_string(),
        "no group named 'nobody' to allow; `skyport groups ls` lists them (name a group as group:NAME)"
    );
    // Nothing of a refused agent was kept.
    assert!(store.agents().list().await.unwrap().is_empty());

    store
        .agents()
        .create(&agent("a", "openai", &["notes"]))
        .await
        .unwrap();
    assert!(matches!(
        refused(agent("a", "openai", &["notes"])).await,
        AgentError::Exists(_)
    ));
    // A provider in use stays, and says by whom.
    let openai: ProviderName = "openai".parse().unwrap();
    let error = store.providers().remove(&openai).await.unwrap_err();
    assert!(matches!(error, ProviderError::InUse { .. }));
    assert!(error.to_string().contains("'a'"), "{error}");
    store.agents().remove(&"a".parse().unwrap()).await.unwrap();
    store.providers().remove(&openai).await.unwrap();
    assert!(store.providers().list().await.unwrap().is_empty());
}

async fn conversations_are_per_owner_and_subject_newest_first() {
    let store = store().await;
    store
        .providers()
        .create(&provider("openai", None, true))
        .await
        .unwrap();
    let notes = server(&store, "notes").await;
    let helper = store
        .agents()
        .create(&agent("helper", "openai", &["notes"]))
        .await
        .unwrap();
    let ann = principal(&store, "ann").await;
    let bob = principal(&store, "bob").await;
    let with_agent = ConversationSubject::Agent(helper.id.clone());
    let with_server = ConversationSubject::Server(notes.clone());

    let long = format!("  {}\nmore", "é".repeat(100));
    let first = store
        .conversations()
        .create(&ann, &with_agent, &long)
        .await
        .unwrap();
    let second = store
        .conversations()
        .create(&ann, &with_agent, "hello")
        .await
        .unwrap();
    store
        .conversations()
        .create(&ann, &with_server, "tools?")
        .await
        .unwrap();
    store
        .conversations()
        .create(&bob, &with_agent, "mine")
        .await
        .unwrap();

    // The list orders by the last message's time, in milliseconds.
    tokio::time::sleep(Duration::from_millis(5)).await;
    store
        .conversations()
        .append(
            &first,
            &[
                r#"{"role":"user"}"#.into(),
                r#"{"role":"assistant"}"#.into(),
            ],
        )
        .await
        .unwrap();
    store
        .conversations()
        .append(&first, &[r#"{"role":"tool"}"#.into()])
        .await
        .unwrap();
    assert_eq!(
        store.conversations().messages(&first).await.unwrap(),
        [
            r#"{"role":"user"}"#,
            r#"{"role":"assistant"}"#,
            r#"{"role":"tool"}"#
        ]
    );

    let listed = store.conversations().list(&ann, &with_agent).await.unwrap();
    let ids: Vec<&ConversationId> = listed.iter().map(|c| &c.id).collect();
    assert_eq!(ids, [&first, &second]);
    assert_eq!(listed[0].title.chars().count(), MAX_TITLE_CHARS);
    assert!(listed[0].title.chars().all(|c| c == 'é'));
    let on_server = store
        .conversations()
        .list(&ann, &with_server)
        .await
        .unwrap();
    assert_eq!(on_server.len(), 1);
    assert_eq!(on_server[0].subject, with_server);

    let found = store.conversations().find(&second).await.unwrap().unwrap();
    assert_eq!(found.principal, ann);
    assert_eq!(found.title, "hello");

    // Removing the agent removes its conversations.
    store.agents().remove(&helper.name).await.unwrap();
    assert_eq!(store.conversations().find(&first).await.unwrap(), None);
    assert!(
        store
            .conversations()
            .messages(&first)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        store.conversations().append(&first, &["{}".into()]).await,
        Err(StoreError::Conflict(_))
    ));
}

crate::testdb::on_both_databases!(
    provider_keys_are_sealed_and_opened_only_for_connections,
    one_provider_is_the_default_and_limits_hold,
    agents_are_stored_with_servers_in_order_and_access,
    agents_refuse_what_does_not_exist_or_fit,
    conversations_are_per_owner_and_subject_newest_first,
);
