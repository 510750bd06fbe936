//! Tool-level policies as the gateway applies them: each server's rules compiled once, a
//! decision per request, and the filtering of lists (`filter.rs`).
//!
//! The semantics, for one caller and one capability kind (tools, prompts, resources,
//! resource templates, each on its own):
//!
//! 1. the rules that apply are those whose selector matches the caller: `*` always,
//!    `principal:NAME` its name, `group:NAME` one of its groups, `role:NAME` its role on the
//!    server; an anonymous caller matches only `*`;
//! 2. if any applicable `deny` rule of the kind matches the name, it is denied (deny wins);
//! 3. else, if any applicable `allow` rule of the kind exists, only names that some applicable
//!    `allow` rule matches are permitted (the allow rules form an allow-list);
//! 4. else the name is permitted.
//!
//! Resources are matched by URI and templates by `uriTemplate`; a template's rules govern the
//! template list only, since a concrete URI read through a template is a resource.
//!
//! Cost: a server's rules are indexed by selector when they are loaded ([`CompiledPolicy`]);
//! a request looks up the rules that apply to its caller (a few hash lookups) and, when there
//! are any, the [`Decider`] for exactly that set, built on first use and kept: per kind, one
//! multi-pattern regex whose deny patterns come first, so one anchored search per name says
//! "denied", "allowed by an allow rule" or "matched by nothing". A request to which no rule
//! applies gets no decider, and the proxy then neither reads nor rewrites anything.
//!
//! This module does not touch HTTP bodies in flight (the proxy does) or the store's rows (the
//! table follows the store's change feed, like the route table).

pub(crate) mod filter;

pub use filter::filter_list;

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use parking_lot::RwLock;
use regex_automata::meta::{self, Regex};
use regex_automata::{Anchored, Input, MatchKind};
use skyport_store::{
    CapabilityKind, Change, NewPolicyRule, PolicyEffect, PolicySelector, ServerId, Store,
    StoreError,
};
use tokio::sync::broadcast::error::RecvError;

use crate::caller::Caller;

/// Deciders kept per server, one per distinct set of applicable rules; past this many (an
/// unusual number of distinct callers' selector combinations) new ones are built per request.
const MAX_DECIDERS: usize = 4096;

/// A server's rules, indexed by selector, with the deciders built so far.
pub struct CompiledPolicy {
    rules: Vec<NewPolicyRule>,
    everyone: Vec<u32>,
    principals: HashMap<String, Vec<u32>>,
    groups: HashMap<String, Vec<u32>>,
    roles: HashMap<String, Vec<u32>>,
    deciders: RwLock<HashMap<Box<[u32]>, Arc<Decider>>>,
}

impl CompiledPolicy {
    /// Indexes `rules` (in any order: the outcome does not depend on it).
    pub fn compile(rules: Vec<NewPolicyRule>) -> CompiledPolicy {
        let mut compiled = CompiledPolicy {
            rules: Vec::new(),
            everyone: Vec::new(),
            principals: HashMap::new(),
            groups: HashMap::new(),
            roles: HashMap::new(),
            deciders: RwLock::new(HashMap::new()),
        };
        for (index, rule) in rules.iter().enumerate() {
            let Ok(index) = u32::try_from(index) else {
                break;
            };
            match &rule.selector {
                PolicySelector::Everyone => compiled.everyone.push(index),
                PolicySelector::Principal(name) => {
                    compiled.principals.entry(name.clone()).or_default().push(index);
                }
                PolicySelector::Group(name) => {
                    compiled.groups.entry(name.clone()).or_default().push(index);
                }
                PolicySelector::Role(name) => {
                    compiled.roles.entry(name.clone()).or_default().push(index);
                }
            }
        }
        compiled.rules = rules;
        compiled
    }

    /// How `caller` (`None`: anonymous) is judged, or `None` when no rule applies to it.
    pub fn decider(&self, caller: Option<&Caller>) -> Option<Arc<Decider>> {
        let applicable = self.applicable(caller);
        if applicable.is_empty() {
            return None;
        }
        if let Some(decider) = self.deciders.read().get(applicable.as_slice()) {
            return Some(decider.clone());
        }
        let decider = Arc::new(Decider::build(
            applicable.iter().map(|&i| &self.rules[i as usize]),
        ));
        let mut deciders = self.deciders.write();
        if deciders.len() < MAX_DECIDERS {
            deciders.insert(applicable.into_boxed_slice(), decider.clone());
        }
        Some(decider)
    }

    /// The indexes of the rules whose selector matches `caller`, sorted.
    fn applicable(&self, caller: Option<&Caller>) -> Vec<u32> {
        let mut applicable = self.everyone.clone();
        if let Some(caller) = caller {
            let mut add = |index: &HashMap<String, Vec<u32>>, key: &str| {
                if let Some(rules) = index.get(key) {
                    applicable.extend_from_slice(rules);
                }
            };
            add(&self.principals, &caller.name);
            for group in &caller.groups {
                add(&self.groups, group);
            }
            for role in &caller.roles {
                add(&self.roles, role);
            }
        }
        applicable.sort_unstable();
        applicable.dedup();
        applicable
    }

    /// Whether this policy was compiled from exactly `rules`.
    fn is_of(&self, rules: &[NewPolicyRule]) -> bool {
        self.rules == rules
    }
}

/// How one set of applicable rules judges names, per capability kind.
pub struct Decider {
    kinds: [Option<KindMatcher>; 4],
}

/// The applicable rules of one kind, as one regex: deny patterns first, then allow patterns.
struct KindMatcher {
    /// `None` when the rules could not be compiled: every name of the kind is denied then
    /// (failing closed), and the error was logged.
    regex: Option<Regex>,
    denies: usize,
    allow_list: bool,
}

impl Decider {
    fn build<'a>(rules: impl Iterator<Item = &'a NewPolicyRule>) -> Decider {
        let mut denies: [Vec<String>; 4] = Default::default();
        let mut allows: [Vec<String>; 4] = Default::default();
        for rule in rules {
            let kind = rule.capability.kind.index();
            let pattern = pattern(&rule.capability.glob);
            match rule.effect {
                PolicyEffect::Deny => denies[kind].push(pattern),
                PolicyEffect::Allow => allows[kind].push(pattern),
            }
        }
        let kinds = std::array::from_fn(|kind| {
            let (denies, allows) = (&denies[kind], &allows[kind]);
            if denies.is_empty() && allows.is_empty() {
                return None;
            }
            let patterns: Vec<&str> = denies.iter().chain(allows).map(String::as_str).collect();
            let regex = Regex::builder()
                .configure(Regex::config().match_kind(MatchKind::LeftmostFirst))
                .build_many(&patterns)
                .inspect_err(|e| {
                    tracing::error!(error = %e, "cannot compile a policy; its kind is denied whole");
                })
                .ok();
            Some(KindMatcher {
                regex,
                denies: denies.len(),
                allow_list: !allows.is_empty(),
            })
        });
        Decider { kinds }
    }

    /// Whether any applicable rule is about `kind` (if none is, every name passes, and its
    /// lists need no filtering).
    pub fn governs(&self, kind: CapabilityKind) -> bool {
        self.kinds[kind.index()].is_some()
    }

    /// Whether the caller may use the capability of `kind` named `name`.
    pub fn permits(&self, kind: CapabilityKind, name: &str) -> bool {
        match &self.kinds[kind.index()] {
            None => true,
            Some(matcher) => matcher.permits(name, |regex, input| regex.search_half(input)),
        }
    }

    /// A judge of many names of `kind` in a row (a list), reusing one search cache; `None`
    /// when the kind is not governed (everything passes).
    pub fn lister(&self, kind: CapabilityKind) -> Option<Lister<'_>> {
        let matcher = self.kinds[kind.index()].as_ref()?;
        Some(Lister {
            cache: matcher.regex.as_ref().map(Regex::create_cache),
            matcher,
        })
    }
}

impl KindMatcher {
    fn permits(
        &self,
        name: &str,
        search: impl FnOnce(&Regex, &Input<'_>) -> Option<regex_automata::HalfMatch>,
    ) -> bool {
        let Some(regex) = &self.regex else {
            return false;
        };
        let input = Input::new(name).anchored(Anchored::Yes);
        match search(regex, &input) {
            Some(found) => found.pattern().as_usize() >= self.denies,
            None => !self.allow_list,
        }
    }
}

/// Judges the names of one list, one kind.
pub struct Lister<'a> {
    matcher: &'a KindMatcher,
    cache: Option<meta::Cache>,
}

impl Lister<'_> {
    /// Whether the caller may see the capability named `name`.
    pub fn permits(&mut self, name: &str) -> bool {
        let cache = &mut self.cache;
        self.matcher.permits(name, |regex, input| match cache {
            Some(cache) => regex.search_half_with(cache, input),
            None => regex.search_half(input),
        })
    }
}

/// The regex of a glob, matched from the start of a name (the search is anchored) to its end:
/// `*` any run of characters (newlines too), `?` one character, the rest literally.
fn pattern(glob: &str) -> String {
    let mut out = String::with_capacity(glob.len() + 8);
    out.push_str("(?s)");
    let mut buffer = [0u8; 4];
    for c in glob.chars() {
        match c {
            '*' => out.push_str(".*"),
            '?' => out.push('.'),
            c => out.push_str(&regex_syntax::escape(c.encode_utf8(&mut buffer))),
        }
    }
    out.push_str(r"\z");
    out
}

/// Every server's compiled policy, in memory; lookups are a lock-free pointer load.
#[derive(Clone)]
pub(crate) struct PolicyTable {
    servers: Arc<ArcSwap<HashMap<ServerId, Arc<CompiledPolicy>>>>,
}

impl PolicyTable {
    /// The store's rules now; keeps following the store's change feed until it closes.
    pub(crate) async fn load(store: &Store) -> Result<PolicyTable, StoreError> {
        // Subscribe before reading, so no change between the read and the follow is missed.
        let changes = store.subscribe();
        let servers = Arc::new(ArcSwap::from_pointee(read(store, &HashMap::new()).await?));
        tokio::spawn(follow(store.clone(), servers.clone(), changes));
        Ok(PolicyTable { servers })
    }

    /// How `caller` is judged on `server`, or `None` when no rule of the server applies to
    /// it (then nothing of the request needs looking at).
    pub(crate) fn decider(
        &self,
        server: &ServerId,
        caller: Option<&Caller>,
    ) -> Option<Arc<Decider>> {
        let servers = self.servers.load();
        if servers.is_empty() {
            return None;
        }
        servers.get(server)?.decider(caller)
    }
}

/// Reloads the table on every policy change and server removal (or when changes were missed).
async fn follow(
    store: Store,
    servers: Arc<ArcSwap<HashMap<ServerId, Arc<CompiledPolicy>>>>,
    mut changes: tokio::sync::broadcast::Receiver<Change>,
) {
    loop {
        match changes.recv().await {
            Ok(Change::Policies { .. } | Change::ServerRemoved { .. })
            | Err(RecvError::Lagged(_)) => match read(&store, &servers.load()).await {
                Ok(table) => servers.store(Arc::new(table)),
                Err(e) => tracing::error!("cannot reload tool-level policies: {e}"),
            },
            Ok(_) => {}
            Err(RecvError::Closed) => return,
        }
    }
}

/// The store's rules, compiled per server; a server whose rules did not change keeps its
/// compiled policy (and the deciders it built).
async fn read(
    store: &Store,
    previous: &HashMap<ServerId, Arc<CompiledPolicy>>,
) -> Result<HashMap<ServerId, Arc<CompiledPolicy>>, StoreError> {
    let mut rules: HashMap<ServerId, Vec<NewPolicyRule>> = HashMap::new();
    for rule in store.policies().all().await? {
        rules.entry(rule.server).or_default().push(rule.rule);
    }
    Ok(rules
        .into_iter()
        .map(|(server, rules)| {
            let compiled = match previous.get(&server) {
                Some(kept) if kept.is_of(&rules) => kept.clone(),
                _ => Arc::new(CompiledPolicy::compile(rules)),
            };
            (server, compiled)
        })
        .collect())
}

#[cfg(test)]
mod tests;
