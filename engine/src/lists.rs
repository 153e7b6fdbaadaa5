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

/// The columns of a data table, from CSV text whose first row names them,
/// as lists named `table.column` (the way rules name them:
/// `$e.principal.user.userid in %admins.user`). Fields follow RFC 4180:
/// separated by commas, optionally in double quotes, a quote inside a
/// quoted field doubled. Each column lists the row values that are not
/// empty, trimmed. The error names the line, counted from 1.
pub fn table_columns(table: &str, csv: &str) -> Result<Vec<RefList>, String> {
    let mut rows = csv_rows(csv)?.into_iter().filter(|(_, row)| row.iter().any(|f| !f.is_empty()));
    let Some((_, header)) = rows.next() else {
        return Err("line 1: expected a header row naming the columns, found nothing".into());
    };
    let mut columns: Vec<RefList> = Vec::new();
    for name in &header {
        let valid =
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !valid {
            return Err(format!(
                "line 1: expected column names of letters, digits and `_`, found `{name}`"
            ));
        }
        let full = format!("{table}.{name}");
        if columns.iter().any(|c| c.name == full) {
            return Err(format!("line 1: column `{name}` is named twice"));
        }
        columns.push(RefList { name: full, entries: Vec::new() });
    }
    for (line, row) in rows {
        if row.len() != columns.len() {
            return Err(format!(
                "line {line}: expected {} fields, as the header has, found {}",
                columns.len(),
                row.len()
            ));
        }
        for (column, value) in columns.iter_mut().zip(row) {
            if !value.is_empty() {
                column.entries.push(value);
            }
        }
    }
    Ok(columns)
}

/// The rows of CSV text, each with the line it starts on.
fn csv_rows(csv: &str) -> Result<Vec<(usize, Vec<String>)>, String> {
    let mut rows = Vec::new();
    let mut chars = csv.chars().peekable();
    let mut line = 1;
    while chars.peek().is_some() {
        let start = line;
        let mut row = Vec::new();
        loop {
            let mut field = String::new();
            if chars.peek() == Some(&'"') {
                chars.next();
                loop {
                    match chars.next() {
                        Some('"') if chars.peek() == Some(&'"') => {
                            chars.next();
                            field.push('"');
                        }
                        Some('"') => break,
                        Some(c) => {
                            line += usize::from(c == '\n');
                            field.push(c);
                        }
                        None => return Err(format!("line {start}: a quoted field is not closed")),
                    }
                }
            }
            while let Some(&c) = chars.peek() {
                if c == ',' || c == '\n' {
                    break;
                }
                field.push(c);
                chars.next();
            }
            row.push(field.trim().to_string());
            match chars.next() {
                Some(',') => continue,
                Some(_) => line += 1,
                None => {}
            }
            break;
        }
        rows.push((start, row));
    }
    Ok(rows)
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

    #[test]
    fn data_table_columns_become_lists() {
        let csv = "user,role\r\nalice,\"admin, ops\"\n\n\"bob \"\"b\"\"\",\nc,\"two\nlines\"\n";
        let columns = table_columns("admins", csv).unwrap();
        assert_eq!(columns.len(), 2);
        assert_eq!(columns[0].name, "admins.user");
        assert_eq!(columns[0].entries, ["alice", "bob \"b\"", "c"]);
        assert_eq!(columns[1].name, "admins.role");
        assert_eq!(columns[1].entries, ["admin, ops", "two\nlines"]);
    }

    #[test]
    fn data_table_errors_name_the_line() {
        let err = |csv: &str| table_columns("t", csv).unwrap_err();
        assert!(err("").starts_with("line 1: expected a header row"));
        assert!(err("a,a\n").contains("column `a` is named twice"));
        assert!(err("a b\n").contains("found `a b`"));
        assert!(err("a,b\n1,2\n\"x\ny\",2,3\n").starts_with("line 3: expected 2 fields"));
        assert!(err("a\n\"open\n").starts_with("line 2: a quoted field is not closed"));
    }
}
