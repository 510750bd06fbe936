//! Placeholder rewriting: what both databases receive.

use super::numbered;

#[test]
fn placeholders_become_numbered_outside_quotes_and_comments() {
    let cases = [
        "SELECT * FROM t WHERE a = ? AND b = ?",
        "WHERE (?1 IS NULL OR s = ?1) AND (?2 IS NULL OR at >= ?2) LIMIT ?3",
        "SELECT '?', \"a?\" FROM t WHERE x = ? -- why?\n AND y = ?",
        "VALUES (?, ?), (?, ?)",
    ];
    let rewritten: Vec<String> = cases.iter().map(|sql| numbered(sql)).collect();
    insta::assert_snapshot!(rewritten.join("\n"));
}
