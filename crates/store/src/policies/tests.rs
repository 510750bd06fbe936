//! The rule language's parsing, and the repository against a real (in-memory) SQLite database.

use crate::*;

fn rule(effect: &str, selector: &str, capability: &str) -> NewPolicyRule {
    NewPolicyRule {
        effect: effect.parse().unwrap(),
        selector: selector.parse().unwrap(),
        capability: capability.parse().unwrap(),
    }
}

#[test]
fn selectors_parse_and_print_as_written() {
    for text in [
        "*",
        "principal:ana",
        "group:ops",
        "role:viewer",
        "role:admin",
    ] {
        let selector: PolicySelector = text.parse().unwrap();
        assert_eq!(selector.to_string(), text);
    }
    assert_eq!(
        "group:ops".parse::<PolicySelector>(),
        Ok(PolicySelector::Group("ops".into()))
    );
    for bad in ["", "ana", "user:ana", "principal:", "group:a b", "**"] {
        let error = bad.parse::<PolicySelector>().unwrap_err();
        assert!(
            error.to_string().contains("role:admin|editor|viewer"),
            "{bad}: {error}"
        );
    }
    let error = "role:owner".parse::<PolicySelector>().unwrap_err();
    assert_eq!(
        error.to_string(),
        "'owner' is not a server role: write role:admin, role:editor or role:viewer"
    );
}

#[test]
fn capabilities_and_effects_parse_with_what_to_write_instead() {
    let capability: Capability = "resource:notes://*".parse().unwrap();
    assert_eq!(capability.kind, CapabilityKind::Resource);
    assert_eq!(capability.glob, "notes://*");
    assert_eq!(capability.to_string(), "resource:notes://*");
    assert_eq!(
        "template:notes://{id}".parse::<Capability>().unwrap().kind,
        CapabilityKind::Template
    );
    for bad in ["delete_*", "tools:x", "tool:", "tool:a\nb", "", ":x"] {
        let error = bad.parse::<Capability>().unwrap_err();
        assert!(error.to_string().contains("tool:GLOB"), "{bad:?}: {error}");
    }
    assert!("tool:delete_*".parse::<Capability>().is_ok());
    assert_eq!("deny".parse(), Ok(PolicyEffect::Deny));
    assert!(
        "block"
            .parse::<PolicyEffect>()
            .unwrap_err()
            .to_string()
            .contains("allow or deny")
    );
}

async fn rules_are_added_listed_removed_and_announced() {
    let store = crate::testdb::store().await.unwrap();
    let admin = store.keys().ensure_admin().await.unwrap();
    let (notes, _) = store
        .servers()
        .ensure(&"notes".parse().unwrap(), None)
        .await
        .unwrap();
    let (other, _) = store
        .servers()
        .ensure(&"other".parse().unwrap(), None)
        .await
        .unwrap();
    let mut changes = store.subscribe();

    let deny = rule("deny", "role:viewer", "tool:delete_*");
    let added = store
        .policies()
        .add(&notes.id, &deny, Some(&admin.id))
        .await
        .unwrap();
    assert_eq!(
        changes.recv().await.unwrap(),
        Change::Policies {
            server: notes.id.clone()
        }
    );
    assert_eq!(added.rule, deny);
    assert_eq!(
        added.created_by.as_ref().and_then(|a| a.name.as_deref()),
        Some("admin")
    );
    let allow = rule("allow", "*", "prompt:summar?");
    store.policies().add(&notes.id, &allow, None).await.unwrap();
    store
        .policies()
        .add(&other.id, &rule("deny", "*", "resource:*"), None)
        .await
        .unwrap();

    let listed = store.policies().list(&notes.id).await.unwrap();
    assert_eq!(
        listed.iter().map(|r| r.rule.clone()).collect::<Vec<_>>(),
        vec![deny.clone(), allow]
    );
    assert_eq!(store.policies().all().await.unwrap().len(), 3);

    // A rule is removed only through its own server.
    assert!(
        store
            .policies()
            .remove(&other.id, &added.id)
            .await
            .unwrap()
            .is_none()
    );
    let removed = store.policies().remove(&notes.id, &added.id).await.unwrap();
    assert_eq!(removed.map(|r| r.rule), Some(deny));
    assert_eq!(store.policies().list(&notes.id).await.unwrap().len(), 1);

    // Removing the server removes its rules.
    store.servers().remove(&notes.name).await.unwrap();
    let left = store.policies().all().await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].server, other.id);
}

crate::testdb::on_both_databases!(rules_are_added_listed_removed_and_announced,);
