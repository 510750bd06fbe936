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
//! a request looks up the rules that apply to its caller (a few hash lookups, a union of
//! bitsets) and, when there are any, the [`Decider`] for exactly that set, built on first use
//! and kept: per kind, one
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
use regex_automata::meta::Regex;
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

/// A server's rules, indexed by selector, with the deciders built so far. Sets of rules are
/// bitsets (bit `i` is rule `i`): the rules that apply to a caller are the union of a few
/// precomputed sets, with no sorting and one allocation.
pub struct CompiledPolicy {
    rules: Vec<NewPolicyRule>,
    everyone: Vec<u64>,
    principals: HashMap<String, Vec<u64>>,
    groups: HashMap<String, Vec<u64>>,
    roles: HashMap<String, Vec<u64>>,
    deciders: RwLock<HashMap<Box<[u64]>, Arc<Decider>>>,
}

impl CompiledPolicy {
    /// Indexes `rules` (in any order: the outcome does not depend on it).
    pub fn compile(rules: Vec<NewPolicyRule>) -> CompiledPolicy {
        let words = rules.len().div_ceil(64);
        let empty = || vec![0u64; words];
        let mut everyone = empty();
        let mut principals: HashMap<String, Vec<u64>> = HashMap::new();
        let mut groups: HashMap<String, Vec<u64>> = HashMap::new();
        let mut roles: HashMap<String, Vec<u64>> = HashMap::new();
        for (index, rule) in rules.iter().enumerate() {
            let set = match &rule.selector {
                PolicySelector::Everyone => &mut everyone,
                PolicySelector::Principal(name) => {
                    principals.entry(name.clone()).or_insert_with(empty)
                }
                PolicySelector::Group(name) => groups.entry(name.clone()).or_insert_with(empty),
                PolicySelector::Role(name) => roles.entry(name.clone()).or_insert_with(empty),
            };
            set[index / 64] |= 1 << (index % 64);
        }
        CompiledPolicy {
            rules,
            everyone,
            principals,
            groups,
            roles,
            deciders: RwLock::new(HashMap::new()),
        }
    }

    /// How `caller` (`None`: anonymous) is judged, or `None` when no rule applies to it.
    pub fn decider(&self, caller: Option<&Caller>) -> Option<Arc<Decider>> {
        let applicable = self.applicable(caller);
        if applicable.iter().all(|&word| word == 0) {
            return None;
        }
        if let Some(decider) = self.deciders.read().get(applicable.as_slice()) {
            return Some(decider.clone());
        }
        let rules = (0..self.rules.len())
            .filter(|&i| applicable[i / 64] & (1 << (i % 64)) != 0)
            .map(|i| &self.rules[i]);
        let decider = Arc::new(Decider::build(rules));
        let mut deciders = self.deciders.write();
        if deciders.len() < MAX_DECIDERS {
            deciders.insert(applicable.into_boxed_slice(), decider.clone());
        }
        Some(decider)
    }

    /// The rules whose selector matches `caller`, as a bitset.
    fn applicable(&self, caller: Option<&Caller>) -> Vec<u64> {
        let mut applicable = self.everyone.clone();
        if let Some(caller) = caller {
            let mut add = |index: &HashMap<String, Vec<u64>>, key: &str| {
                if let Some(set) = index.get(key) {
                    for (word, more) in applicable.iter_mut().zip(set) {
                        *word |= more;
                    }
                }
            };
            if !self.principals.is_empty() {
                add(&self.principals, &caller.name);
            }
            if !self.groups.is_empty() {
                for group in caller.groups.iter() {
                    add(&self.groups, group);
                }
            }
            if !self.roles.is_empty() {
                for role in &caller.roles {
                    add(&self.roles, role);
                }
            }
        }
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
            Some(matcher) => matcher.permits(name),
        }
    }
}

impl KindMatcher {
    /// Whether `name` passes: a match of a deny pattern denies it, a match of an allow pattern
    /// permits it, no match permits it unless the allow patterns form an allow-list. The
    /// regex's own pool of search caches is used: a cache keeps the lazily built DFA states,
    /// so a fresh one per list would build them again for every list.
    fn permits(&self, name: &str) -> bool {
        let Some(regex) = &self.regex else {
            return false;
        };
        match regex.search_half(&Input::new(name).anchored(Anchored::Yes)) {
            Some(found) => found.pattern().as_usize() >= self.denies,
            None => !self.allow_list,
        }
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
