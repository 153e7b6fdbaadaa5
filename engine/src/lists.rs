//! Reference lists: named lists of strings, regexes or networks that rules
//! test values against (`$e.principal.user.userid in %allowlist`).
//!
//! The host reads them from files and hands them over with the rules. A
//! list's entries are compiled the way the rule uses them, once, when the
//! rules load: `in %l` tests exact strings, `in regex %l` patterns, and
//! `in cidr %l` networks.

use std::collections::HashSet;

use regex::RegexSet;

use crate::func::Cidr;
use crate::re2;

/// A reference list as the host hands it to the engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefList {
    pub name: String,
    pub entries: Vec<String>,
}

/// A list file's entries: one per line, trimmed; blank lines and lines
/// that start with `//` are skipped.
pub fn parse_entries(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("//"))
        .map(str::to_string)
        .collect()
}

/// A list compiled for one way of testing it.
#[derive(Debug)]
pub enum Matcher {
    /// Exact strings; with `nocase`, in lower case.
    Plain {
        entries: HashSet<String>,
        nocase: bool,
    },
    Regex(RegexSet),
    Cidr(Vec<Cidr>),
}

/// Why an entry could not be compiled: its position in the list, from 1,
/// and what was wrong.
pub struct BadEntry {
    pub entry: usize,
    pub message: String,
}

impl Matcher {
    pub fn plain(entries: &[String], nocase: bool) -> Matcher {
        let entries =
            entries.iter().map(|e| if nocase { e.to_lowercase() } else { e.clone() }).collect();
        Matcher::Plain { entries, nocase }
    }

    pub fn regex(entries: &[String], nocase: bool) -> Result<Matcher, BadEntry> {
        let mut patterns = Vec::with_capacity(entries.len());
        for (i, e) in entries.iter().enumerate() {
            // Compiling each alone names the entry at fault.
            re2::compile(e, nocase)
                .map_err(|err| BadEntry { entry: i + 1, message: err.message })?;
            patterns.push(re2::translate(e).unwrap_or_default());
        }
        regex::RegexSetBuilder::new(&patterns)
            .case_insensitive(nocase)
            .size_limit(16 << 20)
            .build()
            .map(Matcher::Regex)
            .map_err(|err| BadEntry { entry: 0, message: err.to_string() })
    }

    pub fn cidr(entries: &[String]) -> Result<Matcher, BadEntry> {
        entries
            .iter()
            .enumerate()
            .map(|(i, e)| {
                Cidr::parse(e).ok_or_else(|| BadEntry {
                    entry: i + 1,
                    message: format!("expected an address range such as `10.0.0.0/8`, found `{e}`"),
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Matcher::Cidr)
    }

    pub fn contains(&self, value: &str) -> bool {
        match self {
            Matcher::Plain { entries, nocase: false } => entries.contains(value),
            Matcher::Plain { entries, nocase: true } => entries.contains(&value.to_lowercase()),
            Matcher::Regex(set) => set.is_match(value),
            Matcher::Cidr(nets) => nets.iter().any(|n| n.contains(value)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_skip_blanks_and_comments() {
        let text = "// automation\n  terraform  \n\n//x\narn:aws:iam::1:role/ci // not a comment\n";
        assert_eq!(parse_entries(text), ["terraform", "arn:aws:iam::1:role/ci // not a comment"]);
    }

    #[test]
    fn matchers() {
        let e = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(Matcher::plain(&e(&["Ab"]), true).contains("aB"));
        assert!(!Matcher::plain(&e(&["Ab"]), false).contains("aB"));
        assert!(Matcher::regex(&e(&["^svc-", r"\d{3}$"]), false).ok().unwrap().contains("x123"));
        assert_eq!(Matcher::regex(&e(&["ok", "("]), false).err().map(|b| b.entry), Some(2));
        assert!(Matcher::cidr(&e(&["10.0.0.0/8"])).ok().unwrap().contains("10.9.9.9"));
        assert!(Matcher::cidr(&e(&["nope"])).is_err());
    }
}
