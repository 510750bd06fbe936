//! Remix definitions: parsing at the edge and the repository against a real SQLite database.

use std::collections::BTreeMap;

use crate::*;

fn name(s: &str) -> ServerName {
    s.parse().unwrap()
}

fn source(server: &str) -> SourceSpec {
    SourceSpec {
        server: name(server),
        tools: Selection::All,
        prompts: Selection::All,
        resources: Selection::All,
        renames: BTreeMap::new(),
        descriptions: BTreeMap::new(),
    }
}

fn only(names: &[&str]) -> Selection {
    Selection::Only(names.iter().map(|n| (*n).to_owned()).collect())
}

#[test]
fn a_spec_needs_one_to_ten_distinct_sources() {
    assert!(matches!(RemixSpec::new(vec![]), Err(RemixError::NoSources)));
    let eleven = (0..11).map(|i| source(&format!("s{i}"))).collect();
    assert!(matches!(
        RemixSpec::new(eleven),
        Err(RemixError::TooManySources(11))
    ));
    let ten = (0..10).map(|i| source(&format!("s{i}"))).collect();
    assert!(RemixSpec::new(ten).is_ok());
    assert!(matches!(
        RemixSpec::new(vec![source("a"), source("a")]),
        Err(RemixError::DuplicateSource(_))
    ));
}

#[test]
fn renames_must_name_taken_items_and_not_clash() {
    let mut a = source("a");
    a.tools = only(&["echo"]);
    a.prompts = only(&[]);
    a.renames.insert("other".into(), "x".into());
    let error = RemixSpec::new(vec![a.clone()]).unwrap_err();
    assert_eq!(
        error.to_string(),
        "'a.other' is renamed or described but not taken: add 'other' to the tools of --source a:…"
    );

    a.renames = BTreeMap::from([("echo".into(), "shout".into())]);
    let mut b = source("b");
    b.renames.insert("ping".into(), "shout".into());
    let error = RemixSpec::new(vec![a.clone(), b]).unwrap_err();
    assert_eq!(
        error.to_string(),
        "'a.echo' and 'b.ping' are both renamed to 'shout'; give them different names"
    );

    a.renames = BTreeMap::from([("echo".into(), "has space".into())]);
    assert!(matches!(
        RemixSpec::new(vec![a]),
        Err(RemixError::BadName(_))
    ));
}

async fn a_remix_is_stored_with_its_sources_in_order() {
    let store = crate::testdb::store().await.unwrap();
    store.servers().ensure(&name("alpha"), None).await.unwrap();
    store.servers().ensure(&name("beta"), None).await.unwrap();
    let mut beta = source("beta");
    beta.tools = only(&["echo", "add"]);
    beta.renames.insert("echo".into(), "beta_echo".into());
    beta.descriptions.insert("add".into(), "Adds.".into());
    let spec = RemixSpec::new(vec![beta.clone(), source("alpha")]).unwrap();

    let mut changes = store.subscribe();
    let remix = store
        .remixes()
        .create(&name("mix"), "both", &spec)
        .await
        .unwrap();
    assert!(matches!(changes.try_recv(), Ok(Change::Remix { .. })));
    assert_eq!(remix.server.kind, ServerKind::Remix);
    assert_eq!(remix.server.description, "both");
    let specs: Vec<_> = remix.sources.iter().map(|s| s.spec.clone()).collect();
    assert_eq!(specs, vec![beta, source("alpha")]);
    assert_eq!(store.remixes().list().await.unwrap(), vec![remix.clone()]);

    // Editing replaces the sources whole; the description alone can change too.
    let spec = RemixSpec::new(vec![source("alpha")]).unwrap();
    let edited = store
        .remixes()
        .update(&name("mix"), None, Some(&spec))
        .await
        .unwrap();
    assert_eq!(edited.server.description, "both");
    assert_eq!(edited.sources.len(), 1);
    let edited = store
        .remixes()
        .update(&name("mix"), Some("alpha only"), None)
        .await
        .unwrap();
    assert_eq!(edited.server.description, "alpha only");

    // A removed source leaves the remix.
    store.servers().remove(&name("alpha")).await.unwrap();
    let remix = store.remixes().get(&name("mix")).await.unwrap().unwrap();
    assert!(remix.sources.is_empty());
}

async fn sources_must_exist_and_not_be_remixes() {
    let store = crate::testdb::store().await.unwrap();
    store.servers().ensure(&name("alpha"), None).await.unwrap();
    let remixes = store.remixes();
    let spec = |names: &[&str]| RemixSpec::new(names.iter().map(|n| source(n)).collect()).unwrap();

    let error = remixes.create(&name("mix"), "", &spec(&["nope"])).await;
    assert!(matches!(error, Err(RemixError::UnknownSource(_))));
    assert!(
        remixes.get(&name("mix")).await.unwrap().is_none(),
        "nothing is left of a refused create"
    );
    let error = remixes.create(&name("mix"), "", &spec(&["mix"])).await;
    assert!(matches!(error, Err(RemixError::OwnSource(_))));

    remixes
        .create(&name("mix"), "", &spec(&["alpha"]))
        .await
        .unwrap();
    let error = remixes.create(&name("mix2"), "", &spec(&["mix"])).await;
    assert!(matches!(error, Err(RemixError::SourceIsRemix(_))));
    let error = remixes.create(&name("alpha"), "", &spec(&["mix"])).await;
    assert!(matches!(error, Err(RemixError::Exists(_))));
    let error = remixes.update(&name("alpha"), Some("x"), None).await;
    assert!(matches!(error, Err(RemixError::NotARemix(..))));
    let error = remixes.update(&name("ghost"), Some("x"), None).await;
    assert!(matches!(error, Err(RemixError::NotFound(_))));
}

crate::testdb::on_both_databases!(
    a_remix_is_stored_with_its_sources_in_order,
    sources_must_exist_and_not_be_remixes,
);
