//! A tool-level policy glob as a user writes it, compiled the way the gateway compiles it: the
//! rule reads back as written, and a deny rule denies exactly the names the glob matches by its
//! definition (`*` any run of characters, `?` one, everything else literally, whole name).

#![no_main]

use libfuzzer_sys::fuzz_target;
use skyport_gateway::policy::CompiledPolicy;
use skyport_store::{Capability, CapabilityKind, NewPolicyRule, PolicyEffect, PolicySelector};

/// The glob's definition, by dynamic programming over characters.
fn matches(glob: &[char], name: &[char]) -> bool {
    let mut row = vec![false; name.len() + 1];
    row[0] = true;
    for &g in glob {
        let mut next = vec![false; name.len() + 1];
        if g == '*' {
            let mut any = false;
            for (i, cell) in next.iter_mut().enumerate() {
                any |= row[i];
                *cell = any;
            }
        } else {
            for i in 0..name.len() {
                next[i + 1] = row[i] && (g == '?' || g == name[i]);
            }
        }
        row = next;
    }
    row[name.len()]
}

fuzz_target!(|input: (&str, &str)| {
    let (glob, name) = input;
    let Ok(capability) = format!("tool:{glob}").parse::<Capability>() else {
        return;
    };
    assert_eq!(
        capability.to_string().parse::<Capability>().ok().as_ref(),
        Some(&capability)
    );
    let rule = NewPolicyRule {
        effect: PolicyEffect::Deny,
        selector: PolicySelector::Everyone,
        capability,
    };
    let policy = CompiledPolicy::compile(vec![rule]);
    let decider = policy
        .decider(None)
        .expect("a rule for everyone applies to anyone");
    let glob: Vec<char> = glob.chars().collect();
    let name_chars: Vec<char> = name.chars().collect();
    assert_eq!(
        !decider.permits(CapabilityKind::Tool, name),
        matches(&glob, &name_chars),
        "glob {glob:?}, name {name:?}"
    );
});
