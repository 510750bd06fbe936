//! Users, groups, grants and role resolution against a real (in-memory) SQLite database.

use crate::*;

async fn store() -> Store {
    crate::testdb::store().await.unwrap()
}

fn user(name: &str) -> NewPrincipal<'_> {
    NewPrincipal {
        name,
        email: None,
        kind: PrincipalKind::User,
        is_admin: false,
    }
}

async fn server(store: &Store, name: &str) -> ServerId {
    let name: ServerName = name.parse().unwrap();
    store.servers().ensure(&name, None).await.unwrap().0.id
}

#[test]
fn resolution_goes_admin_then_grants_then_default() {
    use ServerRole::*;
    assert_eq!(resolve_role(true, [], None), Some(Admin));
    assert_eq!(resolve_role(true, [Viewer], None), Some(Admin));
    assert_eq!(
        resolve_role(false, [Viewer, Editor], Some(Admin)),
        Some(Editor)
    );
    assert_eq!(resolve_role(false, [], Some(Viewer)), Some(Viewer));
    assert_eq!(resolve_role(false, [], None), None);
    assert_eq!("editor".parse(), Ok(Editor));
    assert!("owner".parse::<ServerRole>().is_err());
    assert_eq!(Grantee::parse("group:ops"), Grantee::Group("ops".into()));
    assert_eq!(Grantee::parse("ann").to_string(), "ann");
}

async fn bootstrap_creates_one_admin_whose_password_verifies() {
    let store = store().await;
    let password = store.users().bootstrap().await.unwrap().unwrap();
    assert_eq!(password.len(), 20);
    assert_eq!(store.users().bootstrap().await.unwrap(), None);
    let admin = store
        .users()
        .verify_password("admin", &password)
        .await
        .unwrap()
        .unwrap();
    assert!(admin.is_admin);
    assert_eq!(store.keys().ensure_admin().await.unwrap(), admin);
    for (name, wrong) in [
        ("admin", "nope"),
        ("admin", ""),
        ("nobody", password.as_str()),
    ] {
        assert_eq!(
            store.users().verify_password(name, wrong).await.unwrap(),
            None
        );
    }
}

async fn service_accounts_never_log_in_and_names_are_checked() {
    let store = store().await;
    let bot = NewPrincipal {
        kind: PrincipalKind::Service,
        ..user("ci-bot")
    };
    assert!(matches!(
        store.users().create(&bot, Some("pw")).await,
        Err(AccountError::Service(_))
    ));
    let bot = store.users().create(&bot, None).await.unwrap();
    assert_eq!(bot.kind, PrincipalKind::Service);
    assert_eq!(
        store.users().verify_password("ci-bot", "").await.unwrap(),
        None
    );
    for bad in ["", "Ann", "group:x", "-a", "a b", &"a".repeat(65)] {
        assert!(
            matches!(
                store.users().create(&user(bad), None).await,
                Err(AccountError::InvalidName(_))
            ),
            "{bad}"
        );
    }
    assert!(matches!(
        store.users().create(&user("ci-bot"), None).await,
        Err(AccountError::Exists(_))
    ));
    store.users().create_group("ops").await.unwrap();
    assert!(matches!(
        store.users().create(&user("ops"), None).await,
        Err(AccountError::Exists(_))
    ));
    assert!(store.users().get("ops").await.unwrap().is_none());
}

async fn the_last_admin_cannot_be_removed_and_removal_takes_keys() {
    let store = store().await;
    store.users().bootstrap().await.unwrap();
    assert!(matches!(
        store.users().remove("admin").await,
        Err(AccountError::LastAdmin(_))
    ));
    let second = store
        .users()
        .create(
            &NewPrincipal {
                is_admin: true,
                ..user("bea")
            },
            Some("secret-words"),
        )
        .await
        .unwrap();
    let (_, secret) = store.keys().create(&second.id, "", None).await.unwrap();
    let admin = store.users().get("admin").await.unwrap().unwrap();
    store.users().remove("admin").await.unwrap();
    assert_eq!(store.keys().ensure_admin().await.unwrap(), second);
    assert!(matches!(
        store.users().remove("bea").await,
        Err(AccountError::LastAdmin(_))
    ));
    assert!(store.keys().authenticate(&secret).await.unwrap().is_some());
    assert!(store.users().get(&admin.name).await.unwrap().is_none());
    let ann = store.users().create(&user("ann"), None).await.unwrap();
    let (_, secret) = store.keys().create(&ann.id, "", None).await.unwrap();
    store.users().remove("ann").await.unwrap();
    assert_eq!(store.keys().authenticate(&secret).await.unwrap(), None);
    assert!(matches!(
        store.users().remove("ann").await,
        Err(AccountError::NoPrincipal(_))
    ));
}

async fn roles_resolve_through_grants_groups_and_defaults() {
    let store = store().await;
    let weather = server(&store, "weather").await;
    let notes = server(&store, "notes").await;
    let ann = store.users().create(&user("ann"), None).await.unwrap();
    let bob = store.users().create(&user("bob"), None).await.unwrap();
    store.users().create_group("ops").await.unwrap();
    store.users().add_member("ops", "bob").await.unwrap();
    let mut changes = store.subscribe();

    let access = store.access();
    access
        .grant(&weather, &Grantee::parse("ann"), ServerRole::Viewer)
        .await
        .unwrap();
    assert_eq!(changes.recv().await.unwrap(), Change::Access);
    access
        .grant(&weather, &Grantee::parse("ann"), ServerRole::Editor)
        .await
        .unwrap();
    access
        .grant(&weather, &Grantee::parse("group:ops"), ServerRole::Viewer)
        .await
        .unwrap();
    access
        .set_default(&notes, Some(ServerRole::Viewer))
        .await
        .unwrap();
    assert!(matches!(
        access
            .grant(&weather, &Grantee::parse("group:nope"), ServerRole::Viewer)
            .await,
        Err(GrantError::Unknown { kind: "group", .. })
    ));

    let table = access.table().await.unwrap();
    for (who, server, expected) in [
        (&ann, &weather, Some(ServerRole::Editor)),
        (&bob, &weather, Some(ServerRole::Viewer)),
        (&ann, &notes, Some(ServerRole::Viewer)),
        (&bob, &notes, Some(ServerRole::Viewer)),
    ] {
        assert_eq!(access.role(who, server).await.unwrap(), expected);
        assert_eq!(table.role(&who.id, false, server), expected);
    }
    assert_eq!(*table.groups(&bob.id), ["ops".to_owned()]);
    assert!(table.groups(&ann.id).is_empty());
    assert_eq!(access.roles(&ann).await.unwrap().len(), 2);

    // A group grant stronger than the personal one wins.
    access
        .grant(&weather, &Grantee::parse("group:ops"), ServerRole::Admin)
        .await
        .unwrap();
    store.users().add_member("ops", "ann").await.unwrap();
    assert_eq!(
        access.role(&ann, &weather).await.unwrap(),
        Some(ServerRole::Admin)
    );
    let listed = access.of_server(&weather).await.unwrap();
    assert_eq!(listed.default_role, None);
    assert_eq!(
        listed.grants,
        vec![
            Grant {
                grantee: Grantee::parse("ann"),
                role: ServerRole::Editor
            },
            Grant {
                grantee: Grantee::parse("group:ops"),
                role: ServerRole::Admin
            },
        ]
    );

    store.users().remove_member("ops", "ann").await.unwrap();
    store.users().remove_member("ops", "bob").await.unwrap();
    assert!(
        access
            .revoke(&weather, &Grantee::parse("ann"))
            .await
            .unwrap()
    );
    assert!(
        !access
            .revoke(&weather, &Grantee::parse("ann"))
            .await
            .unwrap()
    );
    access.set_default(&notes, None).await.unwrap();
    let table = access.table().await.unwrap();
    for who in [&ann, &bob] {
        assert_eq!(access.role(who, &weather).await.unwrap(), None);
        assert_eq!(table.role(&who.id, false, &notes), None);
    }
    assert_eq!(
        table.role(&ann.id, true, &notes),
        Some(ServerRole::Admin),
        "org admins administer every server"
    );

    store.users().remove_group("ops").await.unwrap();
    assert!(store.users().groups().await.unwrap().is_empty());
    assert!(access.of_server(&weather).await.unwrap().grants.is_empty());
}

async fn a_preview_is_reached_with_its_parents_roles() {
    let store = store().await;
    let name: ServerName = "api".parse().unwrap();
    let (parent, _) = store.servers().ensure(&name, None).await.unwrap();
    let (preview, _) = store
        .servers()
        .ensure_preview(&parent, "feature/x")
        .await
        .unwrap();
    let ann = store.users().create(&user("ann"), None).await.unwrap();
    store
        .access()
        .grant(&parent.id, &Grantee::parse("ann"), ServerRole::Editor)
        .await
        .unwrap();
    let table = store.access().table().await.unwrap();
    assert_eq!(
        table.role(&ann.id, false, &preview.id),
        Some(ServerRole::Editor)
    );
}

crate::testdb::on_both_databases!(
    bootstrap_creates_one_admin_whose_password_verifies,
    service_accounts_never_log_in_and_names_are_checked,
    the_last_admin_cannot_be_removed_and_removal_takes_keys,
    roles_resolve_through_grants_groups_and_defaults,
    a_preview_is_reached_with_its_parents_roles,
);
