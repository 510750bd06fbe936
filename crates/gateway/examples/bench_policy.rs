//! What tool-level policies cost the gateway per request, for `benches/policy/run`.
//!
//! ```text
//! bench_policy [ROUNDS]
//! ```
//!
//! One server with 100 rules that all apply to the caller (the worst case: a rule that does
//! not apply costs nothing after the selector lookup), and a list of 1,000 tools. Prints µs
//! per operation for: deciding one `tools/call` (the rules that apply to the caller, the
//! cached decider, one search); judging the 1,000 names of a list; filtering a whole
//! `tools/list` answer as JSON and as an event stream; and, as the same-run baseline, parsing
//! and writing that JSON answer back without any policy (what a proxy that rewrites lists pays
//! anyway). Also building a decider from scratch (the first request of a caller's selector
//! combination after a rule change). It reports; it never fails on a figure.

use std::hint::black_box;
use std::io::Write;
use std::time::{Duration, Instant};

use skyport_gateway::Caller;
use skyport_gateway::policy::{CompiledPolicy, filter_list};
use skyport_store::{CapabilityKind, NewPolicyRule, PrincipalId};

/// The verbs of the generated tool names; some rules match a verb.
const VERBS: [&str; 5] = ["read", "list", "create", "update", "delete"];

fn main() -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    let rounds: u32 = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(200);
    let caller = Caller {
        principal: PrincipalId::generate(),
        name: "agent-7".to_owned(),
        email: None,
        roles: vec!["viewer".to_owned()],
        groups: vec!["ops".to_owned(), "dev".to_owned()].into(),
        key: None,
    };
    let tools = tool_names();
    let json_body = serde_json::json!({
        "jsonrpc": "2.0",
        "id": 2,
        "result": {"tools": tools.iter().map(|name| serde_json::json!({
            "name": name,
            "description": format!("Does {name}"),
            "inputSchema": {"type": "object", "properties": {"id": {"type": "string"}}},
        })).collect::<Vec<_>>()},
    })
    .to_string();
    let sse_body = format!("event: message\ndata: {json_body}\n\n");

    let policy = CompiledPolicy::compile(rules());
    let decider = policy.decider(Some(&caller)).expect("the rules apply");
    let permitted = tools
        .iter()
        .filter(|t| decider.permits(CapabilityKind::Tool, t))
        .count();
    writeln!(
        out,
        "policy bench: 100 rules applying to the caller, {} tools ({permitted} permitted), {rounds} rounds",
        tools.len()
    )?;

    let calls = u32::try_from(tools.len()).unwrap_or(u32::MAX) * rounds;
    let call = time(calls, |i| {
        let name = &tools[i as usize % tools.len()];
        let decider = policy.decider(Some(black_box(&caller)));
        black_box(decider.is_some_and(|d| d.permits(CapabilityKind::Tool, name)))
    });
    let names = time(rounds, |_| {
        black_box(
            tools
                .iter()
                .filter(|t| decider.permits(CapabilityKind::Tool, t))
                .count(),
        )
    });
    let json = time(rounds, |_| {
        black_box(filter_list(
            json_body.as_bytes(),
            false,
            &decider,
            CapabilityKind::Tool,
        ))
    });
    let sse = time(rounds, |_| {
        black_box(filter_list(
            sse_body.as_bytes(),
            true,
            &decider,
            CapabilityKind::Tool,
        ))
    });
    let baseline = time(rounds, |_| {
        let value: serde_json::Value =
            serde_json::from_slice(json_body.as_bytes()).unwrap_or_default();
        black_box(value.to_string())
    });
    let build = time(rounds.min(50), |_| {
        let fresh = CompiledPolicy::compile(rules());
        black_box(fresh.decider(Some(&caller)).is_some())
    });

    report(&mut out, "decide one tools/call", call, 1.0)?;
    report(&mut out, "judge a 1,000-tool list (names)", names, 50.0)?;
    report(&mut out, "filter a 1,000-tool list (JSON body)", json, 0.0)?;
    report(
        &mut out,
        "filter a 1,000-tool list (event stream)",
        sse,
        0.0,
    )?;
    report(
        &mut out,
        "baseline: JSON parse + write, no policy",
        baseline,
        0.0,
    )?;
    report(&mut out, "build a decider (first use)", build, 0.0)?;
    writeln!(
        out,
        "JSON filtering / baseline: {:.2}",
        json.as_secs_f64() / baseline.as_secs_f64()
    )
}

/// 1,000 tool names over 40 namespaces and five verbs.
fn tool_names() -> Vec<String> {
    (0..1000)
        .map(|i| format!("ns{}_{}_{}", i % 40, VERBS[i % VERBS.len()], i))
        .collect()
}

/// 100 rules, all applying to `agent-7` (role viewer, groups ops and dev): 60 denies of
/// prefixes, suffixes and `?` globs, and 40 allows that make tools an allow-list.
fn rules() -> Vec<NewPolicyRule> {
    let selectors = [
        "*",
        "role:viewer",
        "group:ops",
        "group:dev",
        "principal:agent-7",
    ];
    let mut rules = Vec::new();
    for i in 0..100 {
        let selector = selectors[i % selectors.len()];
        let (effect, capability) = match i % 5 {
            0 => ("deny", format!("tool:ns{}_delete_*", i % 40)),
            1 => ("deny", format!("tool:*_{}", 900 + i)),
            2 => ("deny", format!("tool:ns{}_update_?", i % 40)),
            _ => ("allow", format!("tool:ns{}_*", i % 40)),
        };
        rules.push(NewPolicyRule {
            effect: effect.parse().expect("an effect"),
            selector: selector.parse().expect("a selector"),
            capability: capability.parse().expect("a capability"),
        });
    }
    rules
}

/// The mean time of `op` over `n` runs (after a tenth as many to warm up).
fn time<T>(n: u32, mut op: impl FnMut(u32) -> T) -> Duration {
    for i in 0..n / 10 {
        black_box(op(i));
    }
    let start = Instant::now();
    for i in 0..n {
        black_box(op(i));
    }
    start.elapsed() / n.max(1)
}

/// One figure; a goal of 0 is none.
fn report(out: &mut impl Write, what: &str, per_op: Duration, goal_us: f64) -> std::io::Result<()> {
    let us = per_op.as_secs_f64() * 1e6;
    if goal_us > 0.0 {
        writeln!(out, "{what:<42} {us:>10.3} µs/op   (goal <= {goal_us} µs)")
    } else {
        writeln!(out, "{what:<42} {us:>10.3} µs/op")
    }
}
