//! The semantics table, globbing, the denial answers and list filtering of JSON and event
//! stream bodies.

use skyport_mcp::jsonrpc::{Body, Id};
use skyport_store::{CapabilityKind, NewPolicyRule, PrincipalId};

use super::filter::{Judgement, Refusal, denial, judge};
use super::{CompiledPolicy, Decider, filter_list};
use crate::caller::Caller;
use Refusal::Unknown;

use CapabilityKind::{Prompt, Resource, Template, Tool};

fn rule(text: &str) -> NewPolicyRule {
    let mut words = text.split(' ');
    let mut next = || words.next().unwrap();
    NewPolicyRule {
        effect: next().parse().unwrap(),
        selector: next().parse().unwrap(),
        capability: next().parse().unwrap(),
    }
}

fn policy(rules: &[&str]) -> CompiledPolicy {
    CompiledPolicy::compile(rules.iter().map(|r| rule(r)).collect())
}

fn caller(name: &str, roles: &[&str], groups: &[&str]) -> Caller {
    Caller {
        principal: PrincipalId::generate(),
        name: name.to_owned(),
        email: None,
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        key: None,
    }
}

/// The names of `kind` among `names` that the decider permits.
fn permitted<'a>(decider: &Decider, kind: CapabilityKind, names: &[&'a str]) -> Vec<&'a str> {
    names
        .iter()
        .copied()
        .filter(|name| decider.permits(kind, name))
        .collect()
}

const TOOLS: [&str; 4] = ["read_note", "delete_note", "delete_all", "list_notes"];

#[test]
fn globs_match_whole_names_with_star_and_question_mark() {
    let p = policy(&[
        "deny * tool:delete_*",
        "deny * tool:r??d_note",
        "deny * tool:a.b",
        "deny * tool:*[x]*",
    ]);
    let d = p.decider(None).unwrap();
    for denied in [
        "delete_",
        "delete_all",
        "read_note",
        "raad_note",
        "a.b",
        "y[x]z",
    ] {
        assert!(!d.permits(Tool, denied), "{denied} passed");
    }
    // Literal characters are literal (a dot is no wildcard), and a glob spans the whole name.
    for passed in [
        "xdelete_all",
        "rad_note",
        "read_notes",
        "aab",
        "yxz",
        "Delete_all",
    ] {
        assert!(d.permits(Tool, passed), "{passed} was denied");
    }
    let p = policy(&["deny * resource:notes://*", "deny * tool:ü?"]);
    let d = p.decider(None).unwrap();
    assert!(!d.permits(Resource, "notes://a/b\nc"));
    assert!(d.permits(Resource, "files://notes://a"));
    assert!(!d.permits(Tool, "üß"), "? is one character, not one byte");
}

#[test]
fn deny_wins_over_allow_and_allow_rules_make_an_allow_list() {
    // One row per case: rules, the caller's role, what of TOOLS it may use.
    let table: [(&[&str], &str, &[&str]); 6] = [
        (&[], "viewer", &TOOLS),
        (
            &["deny role:viewer tool:delete_*"],
            "viewer",
            &["read_note", "list_notes"],
        ),
        (&["deny role:viewer tool:delete_*"], "editor", &TOOLS),
        (&["allow role:viewer tool:read_*"], "viewer", &["read_note"]),
        (
            &["allow * tool:*_note", "deny role:viewer tool:delete_*"],
            "viewer",
            &["read_note"],
        ),
        // An allow rule for another kind leaves tools alone.
        (&["allow role:viewer prompt:summary"], "viewer", &TOOLS),
    ];
    for (rules, role, expected) in table {
        let p = policy(rules);
        let c = caller("ana", &[role], &[]);
        let got = match p.decider(Some(&c)) {
            Some(d) => permitted(&d, Tool, &TOOLS),
            None => TOOLS.to_vec(),
        };
        assert_eq!(got, expected, "rules {rules:?} for a {role}");
    }
}

#[test]
fn selectors_pick_the_rules_that_apply_to_the_caller() {
    let p = policy(&[
        "deny principal:ana tool:read_note",
        "deny group:ops tool:list_notes",
        "deny role:admin tool:delete_all",
        "allow * prompt:summary",
    ]);
    let ana = caller("ana", &[], &[]);
    let ops = caller("bob", &[], &["dev", "ops"]);
    let admin = caller("root", &["admin"], &[]);
    let d = p.decider(Some(&ana)).unwrap();
    assert_eq!(
        permitted(&d, Tool, &TOOLS),
        ["delete_note", "delete_all", "list_notes"]
    );
    let d = p.decider(Some(&ops)).unwrap();
    assert_eq!(
        permitted(&d, Tool, &TOOLS),
        ["read_note", "delete_note", "delete_all"]
    );
    let d = p.decider(Some(&admin)).unwrap();
    assert_eq!(
        permitted(&d, Tool, &TOOLS),
        ["read_note", "delete_note", "list_notes"]
    );
    // Anonymous callers get the `*` rules only: here, a prompt allow-list and no tool rule.
    let d = p.decider(None).unwrap();
    assert!(!d.governs(Tool) && d.governs(Prompt));
    assert!(d.permits(Prompt, "summary") && !d.permits(Prompt, "other"));

    // No applicable rule: no decider, so the proxy looks at nothing.
    let p = policy(&["deny principal:ana tool:*"]);
    assert!(p.decider(None).is_none());
    assert!(p.decider(Some(&caller("bob", &["viewer"], &[]))).is_none());
    // The same set of rules gives the same (cached) decider.
    let first = p.decider(Some(&ana)).unwrap();
    let again = p.decider(Some(&caller("ana", &["viewer"], &[]))).unwrap();
    assert!(std::sync::Arc::ptr_eq(&first, &again));
}

fn envelope(json: &str) -> skyport_mcp::jsonrpc::Envelope {
    match Body::parse(json.as_bytes()).unwrap() {
        Body::Single(envelope) => envelope,
        Body::Batch(_) => panic!("a batch"),
    }
}

#[test]
fn calls_are_judged_by_their_target_and_lists_by_kind() {
    let p = policy(&[
        "deny * tool:delete_*",
        "deny * prompt:secret",
        "deny * resource:notes://private/*",
    ]);
    let d = p.decider(None).unwrap();
    let judged = |json: &str| judge(&d, &envelope(json));
    let call = |method: &str, params: &str| {
        judged(&format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"{method}","params":{params}}}"#
        ))
    };
    assert_eq!(
        call("tools/call", r#"{"name":"delete_note"}"#),
        Judgement::Deny(Unknown(Tool))
    );
    assert_eq!(
        call("tools/call", r#"{"name":"read_note"}"#),
        Judgement::Pass
    );
    assert_eq!(
        call("prompts/get", r#"{"name":"secret"}"#),
        Judgement::Deny(Unknown(Prompt))
    );
    let private = r#"{"uri":"notes://private/1"}"#;
    assert_eq!(
        call("resources/read", private),
        Judgement::Deny(Unknown(Resource))
    );
    assert_eq!(
        call("resources/subscribe", private),
        Judgement::Deny(Unknown(Resource))
    );
    assert_eq!(call("tools/list", "{}"), Judgement::Filter(Tool));
    assert_eq!(call("resources/list", "{}"), Judgement::Filter(Resource));
    // No template rule: the template list is not touched.
    assert_eq!(call("resources/templates/list", "{}"), Judgement::Pass);
    assert_eq!(call("ping", "{}"), Judgement::Pass);
}

#[test]
fn completions_of_denied_prompts_and_templates_come_back_empty() {
    let p = policy(&["deny * prompt:secret", "deny * template:notes://private/*"]);
    let d = p.decider(None).unwrap();
    let complete = |reference: &str| {
        judge(
            &d,
            &envelope(&format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{{"ref":{reference},"argument":{{"name":"a","value":""}}}}}}"#
            )),
        )
    };
    let no_completions = Judgement::Deny(Refusal::NoCompletions);
    assert_eq!(
        complete(r#"{"type":"ref/prompt","name":"secret"}"#),
        no_completions
    );
    assert_eq!(
        complete(r#"{"type":"ref/prompt","name":"open"}"#),
        Judgement::Pass
    );
    let private = r#"{"type":"ref/resource","uri":"notes://private/{id}"}"#;
    assert_eq!(complete(private), no_completions);
    let (body, error) = denial(Refusal::NoCompletions, "secret", Some(&Id::Number(1)), true);
    assert!(!error);
    insta::assert_snapshot!(String::from_utf8(body).unwrap(), @r#"{"id":1,"jsonrpc":"2.0","result":{"completion":{"hasMore":false,"total":0,"values":[]},"resultType":"complete"}}"#);
}

#[test]
fn denials_read_like_the_servers_unknown_name_answers() {
    let id = Id::Number(7);
    let text = |kind, name, stateless| {
        let (body, error) = denial(Unknown(kind), name, Some(&id), stateless);
        (String::from_utf8(body).unwrap(), error)
    };
    insta::assert_snapshot!(text(Tool, "delete_note", false).0, @r#"{"id":7,"jsonrpc":"2.0","result":{"content":[{"text":"Unknown tool: 'delete_note'","type":"text"}],"isError":true}}"#);
    insta::assert_snapshot!(text(Tool, "it's", true).0, @r#"{"id":7,"jsonrpc":"2.0","result":{"content":[{"text":"Unknown tool: \"it's\"","type":"text"}],"isError":true,"resultType":"complete"}}"#);
    let (prompt, error) = text(Prompt, "secret", false);
    assert!(error);
    insta::assert_snapshot!(prompt, @r#"{"error":{"code":-32602,"message":"Unknown prompt: 'secret'"},"id":7,"jsonrpc":"2.0"}"#);
    insta::assert_snapshot!(text(Resource, "notes://a'\"\\", false).0, @r#"{"error":{"code":-32602,"data":{"uri":"notes://a'\"\\"},"message":"Resource not found: 'notes://a\\'\"\\\\'"},"id":7,"jsonrpc":"2.0"}"#);
}

/// A FastMCP-like list answer with tools named `names`.
fn tools_result(names: &[&str]) -> String {
    let tools: Vec<serde_json::Value> = names
        .iter()
        .map(|n| serde_json::json!({"name": n, "inputSchema": {"type": "object"}}))
        .collect();
    serde_json::json!({"jsonrpc": "2.0", "id": 3, "result": {"tools": tools}}).to_string()
}

#[test]
fn json_lists_lose_their_denied_entries() {
    let p = policy(&[
        "deny role:viewer tool:delete_*",
        "allow * template:notes://{id}",
    ]);
    let d = p.decider(Some(&caller("ana", &["viewer"], &[]))).unwrap();
    let body = tools_result(&TOOLS);
    let filtered = filter_list(body.as_bytes(), false, &d, Tool).unwrap();
    insta::assert_snapshot!(String::from_utf8(filtered).unwrap(), @r#"{"id":3,"jsonrpc":"2.0","result":{"tools":[{"inputSchema":{"type":"object"},"name":"read_note"},{"inputSchema":{"type":"object"},"name":"list_notes"}]}}"#);
    // Nothing denied: the body is kept as it came.
    let allowed = tools_result(&["read_note"]);
    assert_eq!(filter_list(allowed.as_bytes(), false, &d, Tool), None);
    // Templates are matched by their uriTemplate; entries without one are dropped.
    let templates = r#"{"jsonrpc":"2.0","id":4,"result":{"resourceTemplates":[{"uriTemplate":"notes://{id}","name":"one"},{"uriTemplate":"files://{path}","name":"file"},{"name":"broken"}]}}"#;
    let filtered = filter_list(templates.as_bytes(), false, &d, Template).unwrap();
    insta::assert_snapshot!(String::from_utf8(filtered).unwrap(), @r#"{"id":4,"jsonrpc":"2.0","result":{"resourceTemplates":[{"name":"one","uriTemplate":"notes://{id}"}]}}"#);
    // Errors and other shapes pass untouched.
    let error = r#"{"jsonrpc":"2.0","id":3,"error":{"code":-32601,"message":"no"}}"#;
    assert_eq!(filter_list(error.as_bytes(), false, &d, Tool), None);
    assert_eq!(filter_list(b"not json", false, &d, Tool), None);
}

#[test]
fn event_streams_have_only_the_list_event_rewritten() {
    let p = policy(&["deny * tool:delete_*"]);
    let d = p.decider(None).unwrap();
    let stream = format!(
        ": keepalive\n\nevent: message\ndata: {{\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{{\"data\":\"delete_note\"}}}}\n\nevent: message\r\nid: 17\r\ndata: {}\r\n\r\n",
        tools_result(&TOOLS)
    );
    let filtered = filter_list(stream.as_bytes(), true, &d, Tool).unwrap();
    insta::assert_snapshot!(String::from_utf8(filtered).unwrap(), @r#"
    : keepalive

    event: message
    data: {"jsonrpc":"2.0","method":"notifications/message","params":{"data":"delete_note"}}

    event: message
    id: 17
    data: {"id":3,"jsonrpc":"2.0","result":{"tools":[{"inputSchema":{"type":"object"},"name":"read_note"},{"inputSchema":{"type":"object"},"name":"list_notes"}]}}
    "#);
    // A data field split over lines is one message, and is rewritten as one line.
    let split = "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":3,\ndata: \"result\":{\"tools\":[{\"name\":\"delete_note\"},{\"name\":\"x\"}]}}\n\n";
    let filtered = filter_list(split.as_bytes(), true, &d, Tool).unwrap();
    assert_eq!(
        String::from_utf8(filtered).unwrap(),
        "event: message\ndata: {\"id\":3,\"jsonrpc\":\"2.0\",\"result\":{\"tools\":[{\"name\":\"x\"}]}}\n\n"
    );
    let untouched = format!("event: message\ndata: {}\n\n", tools_result(&["read_note"]));
    assert_eq!(filter_list(untouched.as_bytes(), true, &d, Tool), None);
}
